"""evaluate.py's `run` end to end on the bundled ml-100k, and the evaluate configs' contracts."""

from __future__ import annotations

import csv
import dataclasses
import importlib
import json
from pathlib import Path

import pytest

from shortrec_jax.baselines import BASELINES
from shortrec_jax.evaluation import run
from shortrec_jax.evaluation.runner import config_key, method_names, protocol_options

CONFIGS = ("paper_fig6", "paper_fig7", "full_ranking_ml100k", "loo_ml100k", "pipeline_ml100k")


def baseline_factory(fitted: list | None = None):
    """A stand-in for the registry: baselines by name, the repeat seed where they take one."""

    def make_method(name, config, *, seed, workdir):
        cls = BASELINES[name]
        kwargs = config.to_dict()
        if "seed" in {f.name for f in dataclasses.fields(cls)}:
            kwargs["seed"] = seed
        if fitted is not None:
            fitted.append((name, seed))
        return cls(**kwargs)

    return make_method


def small(name: str, **protocol):
    config = importlib.import_module(f"configs.{name}").get_config()
    config.repeats = 2
    config.method_names = ("item-mean,random",)
    config.progress_bar = False
    for key, value in protocol.items():
        config.protocol[key] = value
    return config


def test_paper_run_writes_results_csv_png_markdown_and_restarts(tmp_path: Path):
    config = small("paper_fig6")
    fitted: list = []
    results = run(config, tmp_path, make_method=baseline_factory(fitted))
    assert fitted == [("item-mean", 2020), ("random", 2020), ("item-mean", 2021), ("random", 2021)]
    names = {Path(f).name for f in results["files"]}
    assert names == {
        "metrics.csv",
        "precision_at_n.csv",
        "precision_at_n.png",
        "results.md",
        "results.json",
    }
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["seeds"] == [2020, 2021]
    assert saved["config"]["protocol"]["name"] == "paper"
    assert saved["versions"]["numpy"]
    assert saved["timings"]["compute_seconds"] > 0
    item_mean = saved["methods"]["item-mean"]
    assert set(item_mean["repeats"]) == {"2020", "2021"}
    # The study's protocol on ml-100k: item means reach about 0.79 at N = 1, a random order
    # stays near the base rate of about 0.57 (docs/references.md).
    assert item_mean["mean"]["precision@1"] == pytest.approx(0.79, abs=0.03)
    assert saved["methods"]["random"]["mean"]["precision@10"] == pytest.approx(0.57, abs=0.03)
    with open(tmp_path / "precision_at_n.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 20 and rows[0]["method"] == "item-mean" and rows[0]["n"] == "1"
    assert (tmp_path / "precision_at_n.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (tmp_path / "results.md").read_text()
    assert "| item-mean |" in table and "| random |" in table and "precision@10" in table
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind

    # A restart in the same folder recomputes nothing and reports the same numbers.
    fitted.clear()
    again = run(config, tmp_path, make_method=baseline_factory(fitted))
    assert fitted == []
    assert again["methods"] == results["methods"]


def test_size_run_writes_the_fig7_curve(tmp_path: Path):
    config = small("paper_fig7", train_fractions=(0.5, 1.0))
    config.repeats = 1
    run(config, tmp_path, make_method=baseline_factory())
    assert (tmp_path / "precision_vs_size.png").read_bytes()[:4] == b"\x89PNG"
    with open(tmp_path / "precision_vs_size.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["fraction"] for r in rows} == {"0.5", "1"}
    assert "| item-mean |" in (tmp_path / "results.md").read_text()


@pytest.mark.parametrize("name", CONFIGS)
def test_configs_keep_their_contract(name: str):
    config = importlib.import_module(f"configs.{name}").get_config()
    module = importlib.import_module(f"configs.{name}")
    assert f"python evaluate.py --config=configs/{name}.py" in module.__doc__
    names = method_names(config)  # every method has a section
    protocol_options(config)  # every protocol field is an option of the protocol
    for method in names:
        if method in BASELINES:
            fields = {f.name for f in dataclasses.fields(BASELINES[method])}
            section = set(config.methods[config_key(method)].to_dict())
            assert section <= fields, f"{method}: {sorted(section - fields)}"


def test_bad_configs_name_the_field(tmp_path: Path):
    config = small("paper_fig6")
    config.method_names = ("item-mean", "deep-magic")
    with pytest.raises(ValueError, match="deep-magic"):
        run(config, tmp_path, make_method=baseline_factory())
    config = small("paper_fig6")
    config.protocol.ks = (1, 2)
    with pytest.raises(ValueError, match="'ks'"):
        run(config, tmp_path, make_method=baseline_factory())
