"""Bring your own data: side files, auto feature fields, command-line overrides, and every
program on generated data sets of each shape by changing only the source (issue 17)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
from ml_collections import ConfigDict

from configs import full_ranking_ml100k, loo_ml100k, paper_fig6
from shortrec_jax import overrides
from shortrec_jax.data import DataError, load
from shortrec_jax.data.auto_fields import resolve_ctr_fields
from shortrec_jax.data.side_files import SideFile, attach_side_file, load_configured
from shortrec_jax.evaluation import run as evaluate
from shortrec_jax.training.loop import train_and_evaluate
from shortrec_jax.training.run import load_run
from tests import own_data
from tests.small_runs import one_layer_bert4rec
from tests.test_train_bert4rec import small_config as bert4rec_config
from tests.test_train_ctr import ROOT, SMALL
from tests.test_train_ctr import small_config as ctr_config

COLUMNS = "duration:numeric,category:categorical,tags:multi_hot"


def _video_config(tmp_path, config: ConfigDict) -> ConfigDict:
    """`config` pointed at the generated video log and its metadata file, as the flags of
    `own_data.video_overrides` do."""
    inter, meta = own_data.videos(tmp_path)
    config.data.source = f"csv:{inter}"
    config.data.source_options = ConfigDict(
        {"columns": {"user": "user_id", "item": "video_id", "rating": "watch_ratio"}}
    )
    config.data.source_options.timestamp_column = "time"
    config.data.item_side.path = str(meta)
    config.data.item_side.id_column = "video_id"
    config.data.item_side.columns = COLUMNS
    return config


def _shrink_ctr(config: ConfigDict) -> ConfigDict:
    config.data.subsample = 1.0
    config.train.num_epochs = 1
    config.train.batch_size = 64
    config.eval.batch_size = 128
    return config


# -- side files ---------------------------------------------------------------------------------


def test_item_side_file_columns_land_in_the_dataset(tmp_path):
    ds = load_configured(_video_config(tmp_path, ctr_config()).data)
    v0, v7 = ds.item_index("v0"), ds.item_index("v7")
    assert ds.item_numeric["duration"][v0] == pytest.approx(5.5)
    assert np.isnan(ds.item_numeric["duration"][v7])  # empty in the file: missing
    assert ds.item_categorical["category"][v7] == "cat3"
    assert ds.item_multi_hot["tags"].row(ds.item_index("v4")).tolist() == ["t1", "t4"]
    assert ds.item_tags.row(ds.item_index("v4")).tolist() == ["t1", "t4"]
    # v_unwatched has metadata but no interaction: left out and counted.
    assert list(ds.dropped.values()) == [1]
    assert "v_unwatched" not in ds.item_ids


@pytest.mark.parametrize(
    ("text", "columns", "message"),
    [
        ("id,duration\nv0,5\nv1,long\n", ("duration:numeric",), r"videos.csv, line 3: .*'long'"),
        ("id,duration\nv0,5\nv0,6\n", ("duration:numeric",), r"line 3: id 'v0' repeats line 2"),
        ("id,duration\nv0,5\n,6\n", ("duration:numeric",), r"line 3: empty id"),
        ("id,duration\nv0,5,7\n", ("duration:numeric",), r"videos.csv, line"),
        ("id,duration\nv0,5\n", ("length:numeric",), r"line 1: missing column\(s\) \['length'\]"),
        ("id,v\nv0,1|2\nv1,1|2|3\n", ("v:dense",), r"line 3: column 'v' has 3 numbers"),
    ],
)
def test_bad_side_files_name_the_file_and_line(tmp_path, text, columns, message):
    inter, _ = own_data.videos(tmp_path)
    ds = load(f"csv:{inter}", columns={"user": "user_id", "item": "video_id"})
    path = tmp_path / "videos.csv"
    path.write_text(text)
    spec = SideFile(str(path), "id", tuple(c.split(":") for c in columns))
    with pytest.raises(DataError, match=message):
        attach_side_file(ds, spec, "item")


def test_side_file_declaration_errors_name_the_key():
    section = ConfigDict({"path": "v.csv", "id_column": "id", "columns": "d:number"})
    section.delimiter, section.separator = "", "|"
    with pytest.raises(DataError, match=r"data.item_side.columns entry 'd:number'"):
        SideFile.from_config(section, "item")
    section.columns = "d:numeric"
    with pytest.raises(DataError, match=r"data.user_side.columns entry 'd:numeric'"):
        SideFile.from_config(section, "user")


def test_user_side_file_gives_user_fields_that_auto_takes(tmp_path):
    inter, _ = own_data.videos(tmp_path)
    ds = load(f"csv:{inter}", columns={"user": "user_id", "item": "video_id"})
    path = tmp_path / "users.csv"
    rows = [f"user{u},{'young' if u % 2 else 'old'},{u}" for u in range(own_data.NUM_USERS)]
    path.write_text("uid,age_group,phone\n" + "\n".join(rows[1:]) + "\n")
    spec = SideFile(str(path), "uid", (("age_group", "categorical"), ("phone", "categorical")))
    ds = attach_side_file(ds, spec, "user")
    assert ds.user_features["age_group"][ds.user_index("user3")] == "young"
    assert ds.user_features["age_group"][ds.user_index("user0")] == ""  # no row: missing
    # "phone" tells every user apart: auto leaves it to the user_id field.
    fields = resolve_ctr_fields(ctr_config().data, ds)
    assert [f.name for f in fields] == ["user_id", "item_id", "age_group"]


def test_dense_side_column_becomes_item_vectors(tmp_path):
    inter, _ = own_data.videos(tmp_path)
    ds = load(f"csv:{inter}", columns={"user": "user_id", "item": "video_id"})
    path = tmp_path / "vectors.tsv"
    path.write_text("id\tvec\nv1\t0.5 1.5\nv2\t\n")
    ds = attach_side_file(ds, SideFile(str(path), "id", (("vec", "dense"),), separator=" "), "item")
    assert ds.item_vectors[ds.item_index("v1")].tolist() == [0.5, 1.5]
    assert ds.item_vectors[ds.item_index("v2")].tolist() == [0.0, 0.0]


# -- auto fields --------------------------------------------------------------------------------


def test_auto_fields_on_ml100k_are_recboles_features():
    ds = load("ml-100k")
    fields = resolve_ctr_fields(ctr_config().data, ds)
    # zip_code is left out: 795 values for 943 users identify users rather than describe them.
    names = [f.name for f in fields]
    assert names == ["user_id", "item_id", "age", "gender", "occupation", "year", "genres"]


def test_named_fields_the_data_lacks_are_one_line_naming_what_it_has(tmp_path):
    ds = load(f"grouplens:{own_data.ratings_csv(tmp_path / 'gl')}")
    data = ctr_config().data
    assert [f.name for f in resolve_ctr_fields(data, ds)] == [
        "user_id",
        "item_id",
        "year",
        "genres",
    ]
    data.user_fields = ("age",)
    with pytest.raises(DataError, match=r"^data.user_fields names \['age'\].*it has none") as e:
        resolve_ctr_fields(data, ds)
    assert "\n" not in str(e.value)


# -- command-line overrides ---------------------------------------------------------------------


def test_none_empty_and_comma_separated_overrides():
    config = full_ranking_ml100k.get_config()
    argv, later = overrides.split_argv(
        [
            "--config.protocol.diversity_feature=none",
            "--config.protocol.threshold=None",
            "--config.report.columns=",
            "--config.method_names=item-cf,pop",
            "--config.data.source_options.columns.user=user_id",
            "--config.data.source_options.rating_range=(1, 5)",
            "--config.repeats=2",
        ]
    )
    assert argv == [
        "--config.report.columns=",
        "--config.method_names=item-cf,pop",
        "--config.repeats=2",
    ]
    # What ml_collections itself makes of the flags it parses.
    config.report.columns = ("",)
    config.method_names = ("item-cf,pop",)
    overrides.normalise(config, later)
    assert config.protocol.diversity_feature is None
    assert config.protocol.threshold is None
    assert config.report.columns == ()
    assert config.method_names == ("item-cf", "pop")
    assert config.data.source_options.to_dict() == {
        "columns": {"user": "user_id"},
        "rating_range": (1, 5),
    }
    assert overrides.given_on_command_line("method_names")
    assert not overrides.given_on_command_line("seed")


def test_none_is_refused_for_a_required_number():
    _, later = overrides.split_argv(["--config.repeats=none"])
    with pytest.raises(overrides.OverrideError, match=r"--config.repeats=none: repeats is a int"):
        overrides.normalise(paper_fig6.get_config(), later)
    overrides.split_argv([])


# -- xDeepFM reads the side file ----------------------------------------------------------------


@pytest.mark.slow
def test_side_file_duration_and_category_reach_xdeepfm(tmp_path):
    config = _shrink_ctr(_video_config(tmp_path, ctr_config()))
    train_and_evaluate(config, tmp_path / "run")
    run = load_run(tmp_path / "run")
    encoder = run.encoder
    names = [f.name for f in encoder.fields]
    assert names == ["user_id", "item_id", "category", "duration", "tags"]
    saved = json.loads((tmp_path / "run" / "fields.json").read_text())
    assert [f["name"] for f in saved["fields"]] == names

    ds = load_configured(config.data)
    users = np.arange(4)
    items = np.full(4, ds.item_index("v1"))

    def scores(data):
        batch = encoder.encode_pairs(users, items, data)
        return np.asarray(run.model.apply({"params": run.params}, batch, train=False))

    base = scores(ds)
    longer = ds.item_numeric["duration"].copy()
    longer[items[0]] = 500.0
    other = ds.item_categorical["category"].copy()
    other[items[0]] = "cat0"
    with_duration = dataclasses.replace(ds, item_numeric={"duration": longer})
    with_category = dataclasses.replace(ds, item_categorical={"category": other})
    assert not np.allclose(scores(with_duration), base)
    assert not np.allclose(scores(with_category), base)


# -- every program on each shape, changing only the source --------------------------------------


@pytest.mark.slow
def test_train_py_and_recommend_cli_on_a_video_log_from_a_flag_file(tmp_path):
    """The README's commands: the data flags in a file, train.py, then the recommend CLI."""
    inter, meta = own_data.videos(tmp_path)
    flagfile = tmp_path / "mine.flags"
    flagfile.write_text("\n".join(own_data.video_overrides(inter, meta)) + "\n")
    shrink = [a for a in SMALL if "subsample" not in a and "num_epochs" not in a]
    flags = [
        f"--flagfile={flagfile}",
        f"--workdir={tmp_path}/run",
        *shrink,
        "--config.train.num_epochs=1",
        "--config.train.batch_size=64",
        "--config.eval.batch_size=128",
        "--config.data.label_threshold=2",
    ]
    train = subprocess.run(
        [sys.executable, "train.py", *flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert train.returncode == 0, train.stderr
    assert "category (categorical), duration (numeric), tags (multi_hot)" in train.stdout
    cli = ["-m", "shortrec_jax.recommend", f"--workdir={tmp_path}/run", "--user=user3", "--k=5"]
    recommend = subprocess.run(
        [sys.executable, *cli],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert recommend.returncode == 0, recommend.stderr
    table = [line for line in recommend.stdout.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + 5  # the header and five videos


@pytest.mark.slow
def test_train_on_ratings_without_demographics(tmp_path):
    config = _shrink_ctr(ctr_config())
    config.data.source = f"grouplens:{own_data.ratings_csv(tmp_path / 'gl')}"
    results = train_and_evaluate(config, tmp_path / "run")
    assert 0.0 <= results["test"]["auc"] <= 1.0


@pytest.mark.slow
def test_train_bert4rec_on_user_item_sequences(tmp_path):
    config = one_layer_bert4rec(bert4rec_config())
    config.data.source = f"csv:{own_data.sequence_file(tmp_path)}"
    config.data.subsample = 1.0
    # 40 items: 100 sampled negatives per user are more than there are.
    config.eval.sampled_negatives = 10
    results = train_and_evaluate(config, tmp_path / "run")
    assert 0.0 <= results["test"]["hr@10"] <= 1.0


def _eval_config(module, source: str, names: tuple[str, ...]) -> ConfigDict:
    config = module.get_config()
    config.data.source = source
    config.repeats = 1
    config.method_names = names
    config.progress_bar = False
    return config


@pytest.mark.slow
def test_evaluate_paper_protocol_on_ratings_skips_what_the_data_lacks(tmp_path):
    source = f"grouplens:{own_data.ratings_csv(tmp_path / 'gl')}"
    config = _eval_config(paper_fig6, source, ("item-cf", "content", "kg", "pop"))
    results = evaluate(config, tmp_path / "eval")
    assert list(results["methods"]) == ["item-cf", "content", "pop"]
    report = (tmp_path / "eval" / "results.md").read_text()
    assert "- skipped kg: it needs a knowledge graph" in report
    assert "- content: uses genres only" in report


@pytest.mark.slow
def test_evaluate_full_ranking_on_a_video_log(tmp_path):
    config = _eval_config(full_ranking_ml100k, "", ("ease", "item-cf", "pop"))
    results = evaluate(_video_config(tmp_path, config), tmp_path / "eval")
    assert list(results["methods"]) == ["ease", "item-cf", "pop"]
    # No genres: the diversity metric is skipped with a note.
    assert "- skipped diversity" in (tmp_path / "eval" / "results.md").read_text()


@pytest.mark.slow
def test_evaluate_leave_one_out_on_user_item_sequences(tmp_path):
    source = f"csv:{own_data.sequence_file(tmp_path)}"
    config = _eval_config(loo_ml100k, source, ("item-cf", "kg", "pop", "random"))
    config.protocol.sampled_negatives = 10
    results = evaluate(config, tmp_path / "eval")
    assert list(results["methods"]) == ["item-cf", "pop", "random"]


# -- one-line errors ----------------------------------------------------------------------------


@pytest.mark.slow
def test_bad_input_is_one_line_on_stderr_in_every_program(tmp_path):
    gl = own_data.ratings_csv(tmp_path / "gl")
    inter, _ = own_data.videos(tmp_path)
    bad_meta = tmp_path / "bad.csv"
    bad_meta.write_text("video_id,duration\nv1,forever\n")
    side = [
        *own_data.video_overrides(inter, bad_meta)[:-1],
        "--config.data.item_side.columns=duration:numeric",
    ]
    # program and flags -> what its one line must say
    runs = {
        ("train.py", "--config.data.source=csv:/no/such.csv"): "/no/such.csv: no such file",
        (
            "train.py",
            f"--config.data.source=grouplens:{gl}",
            "--config.data.user_fields=age",
        ): "data.user_fields names ['age']",
        ("train.py", *side): "bad.csv, line 2: column 'duration' must be a finite number",
        (
            "evaluate.py",
            f"--config.data.source=grouplens:{gl}",
            "--config.method_names=kg,pop",
        ): "method 'kg' needs a knowledge graph",
        ("evaluate.py", "--config.repeats=none"): "repeats is a int that cannot be none",
        ("-m", "shortrec_jax.recommend", f"--workdir={tmp_path}", "--user=1"): "no config.json",
        ("-m", "shortrec_jax.pipeline.service", f"--workdir={tmp_path}"): "no config.json",
        (
            "-m",
            "shortrec_jax.features.video",
            f"--videos={tmp_path}/none",
            f"--out={tmp_path}/v.npz",
        ): "is not a directory",
    }
    for args, says in runs.items():
        workdir = [f"--workdir={tmp_path}/w"] if args[0].endswith(".py") else []
        proc = subprocess.run(
            [sys.executable, *args, *workdir],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode != 0, args
        assert len(proc.stderr.strip().splitlines()) == 1, (args, proc.stderr)
        assert says in proc.stderr, (args, proc.stderr)
