"""A non-editable install, run from another folder, builds and fits every registered method.

The package is installed with pip (no dependencies, no build isolation: this interpreter's
setuptools and libraries) into a fresh target folder, and a script run from an empty folder,
with only that folder on its path, builds every method of the evaluation registry from the
packaged configs, fits it on a 5% subsample of the bundled MovieLens 100K and scores with it.
It catches what a checkout hides: configs found through the repository root, data files
missing from the wheel, imports of the top-level `configs`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import numpy as np

    import shortrec_jax
    from shortrec_jax.configs import paper_fig6
    from shortrec_jax.data import load
    from shortrec_jax.data.splits import random_split, subsample
    from shortrec_jax.evaluation.registry import DEEP_METHODS, METHOD_NAMES, make_method
    from shortrec_jax.pipeline.method import PIPELINE_METHODS

    target = Path(sys.argv[1]).resolve()
    assert target in Path(shortrec_jax.__file__).resolve().parents, shortrec_jax.__file__
    train = {"num_epochs": 1, "batch_size": 256, "warmup_steps": 1, "max_steps_in_flight": 1}
    tiny = {
        "xdeepfm": {"model": {"embed_dim": 4, "cin_layers": (4,), "mlp_layers": (8,)}},
        "widedeep": {"model": {"embed_dim": 4, "mlp_layers": (8,)}},
        "bert4rec": {
            "data": {"max_len": 8, "window_stride": 4},
            "model": {"hidden": 8, "inner": 16, "num_layers": 1},
            "train": {"max_predictions": 4},
            "eval": {"sampled_negatives": 0},
        },
        "sasrec": {
            "data": {"max_len": 8},
            "model": {"hidden": 8, "inner": 16, "num_layers": 1},
            "eval": {"sampled_negatives": 0},
        },
    }
    for name in tiny:
        tiny[name]["train"] = {**train, **tiny[name].get("train", {})}
        tiny[name]["log"] = {"tensorboard": False}
    configs = paper_fig6.method_configs()
    data = subsample(load("ml-100k"), 0.05, seed=0)
    split = random_split(data, (0.8, 0.2), seed=0)
    users = np.unique(split.test.users)[:3]
    for name in METHOD_NAMES:
        key = name.replace("-", "_")
        config = configs[key].to_dict() if key in configs else {}
        if name in DEEP_METHODS:
            # paper_fig6 names the study's models; the others train from their own config.
            config.setdefault("train_config", f"configs/{name}_ml100k.py")
            config["overrides"] = tiny[name]
        if name in PIPELINE_METHODS:
            config = {"train_config": "configs/xdeepfm_ml100k.py", "overrides": tiny["xdeepfm"]}
        method = make_method(name, config, seed=0, workdir=Path(name))
        scores = method.fit(split.train).score_all(users)
        assert scores.shape == (users.size, data.num_items), (name, scores.shape)
        assert not np.isnan(scores).any(), name
        print("fitted", name)
    """
)


@pytest.mark.slow
def test_a_non_editable_install_fits_every_method_from_another_folder(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(
        ROOT,
        source,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "venv", "runs", "build", "*.egg-info", "__pycache__", ".*_cache"
        ),
    )
    target = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [*pip, "--target", str(target), str(source)],
        check=True,
        capture_output=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(target)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(target)],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    from shortrec_jax.evaluation.registry import METHOD_NAMES

    fitted = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("fitted ")]
    assert fitted == list(METHOD_NAMES)
