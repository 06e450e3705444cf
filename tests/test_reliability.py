"""Reliability: a kill during an asynchronous save, the same numbers twice, non-finite values.

The kill-and-resume test freezes a real `train.py` process (SIGSTOP) at a moment when Orbax is
writing a checkpoint into its temporary folder (`<step>.orbax-checkpoint-tmp` in Orbax 0.12,
renamed to `<step>` once complete), kills it there (SIGKILL), and resumes the run directory.
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pytest
from ml_collections import ConfigDict

from shortrec_jax.data import DataError
from shortrec_jax.data.atomic import load_atomic, load_ml100k
from shortrec_jax.data.delimited import load_delimited
from shortrec_jax.data.features import FeatureEncoder
from shortrec_jax.data.fields import FieldSpec
from shortrec_jax.data.grouplens import load_grouplens
from shortrec_jax.data.kuairec import load_kuairec
from shortrec_jax.training.checkpoint import Checkpointer, abstract_like
from shortrec_jax.training.logger import read_jsonl
from shortrec_jax.training.loop import TrainingError, train_and_evaluate
from shortrec_jax.training.parallel import Partitioner
from tests import test_train_bert4rec
from tests.small_runs import one_layer_bert4rec
from tests.test_train_ctr import ROOT, SMALL, small_config

# Orbax writes a step into "<step>" + this suffix and renames the folder when it is complete.
ORBAX_TMP = ".orbax-checkpoint-tmp"

# One epoch of the shrunk xDeepFM run (16 steps of 512 examples), saved asynchronously every
# 4 steps; the same run as `_crash_config()`, as train.py flags.
CRASH_FLAGS = [
    *SMALL,
    "--config.train.num_epochs=1",
    "--config.checkpoint.every_steps=4",
    "--config.checkpoint.async_save=True",
]


def _crash_config() -> ConfigDict:
    config = small_config()
    config.train.num_epochs = 1
    config.checkpoint.every_steps = 4
    config.checkpoint.async_save = True
    return config


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """An uninterrupted in-process run of `_crash_config()`: (run directory, results)."""
    workdir = tmp_path_factory.mktemp("reference")
    return workdir, train_and_evaluate(_crash_config(), workdir)


def _checkpoint_steps(ckpt_dir: Path) -> tuple[list[int], list[int]]:
    """(complete steps, steps still in a temporary folder) of a checkpoints folder."""
    complete, partial = [], []
    names = os.listdir(ckpt_dir) if ckpt_dir.is_dir() else []
    for name in names:
        if name.isdigit():
            complete.append(int(name))
        elif ORBAX_TMP in name:
            partial.append(int(name.split(".")[0]))
    return sorted(complete), sorted(partial)


def _stop_during_a_save(
    proc: subprocess.Popen, ckpt_dir: Path, log: Path, timeout: float
) -> tuple[list[int], list[int]]:
    """Stops `proc` (SIGSTOP) while a save is half-written and an earlier one is complete.

    Returns:
      (complete steps, half-written steps) as they are on disk while `proc` stays stopped.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        complete, partial = _checkpoint_steps(ckpt_dir)
        if complete and partial:
            proc.send_signal(signal.SIGSTOP)
            # Returns once every thread has stopped, so no rename can still land.
            os.waitpid(proc.pid, os.WUNTRACED)
            complete, partial = _checkpoint_steps(ckpt_dir)
            if complete and partial:
                return complete, partial
            # That save finished between the two looks: let it run to the next one.
            proc.send_signal(signal.SIGCONT)
        time.sleep(0.001)
    proc.kill()
    proc.wait(timeout=60)
    raise AssertionError(f"no save was caught half-written; train.py said:\n{log.read_text()}")


def _restore_latest(workdir: Path, step: int | None = None) -> tuple[int, Any]:
    """(step, host state) of the latest (or the given) checkpoint, restored on one device."""
    ckpt = Checkpointer(workdir, keep=2)
    try:
        step = ckpt.latest_step() if step is None else step
        saved = ckpt.manager.item_metadata(step)["state"]
        abstract = abstract_like(
            jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype), saved),
            Partitioner(jax.devices()[:1]).replicated,
        )
        state, _ = ckpt.restore(step, abstract)
        return step, jax.device_get(state)
    finally:
        ckpt.close()


def _assert_same_run(a: Path, results_a: dict, b: Path, results_b: dict) -> None:
    """Bit-identical final parameters, metrics and logged training losses of two runs."""
    step_a, state_a = _restore_latest(a)
    step_b, state_b = _restore_latest(b)
    assert step_a == step_b
    jax.tree.map(np.testing.assert_array_equal, state_a, state_b)
    for key in ("valid", "test", "best_step", "best_epoch", "epochs"):
        assert results_a.get(key) == results_b.get(key), key

    def losses(workdir: Path) -> list[tuple[int, float]]:
        return [
            (r["step"], r["loss"]) for r in read_jsonl(workdir / "metrics.jsonl") if "loss" in r
        ]

    assert losses(a) == losses(b)


# -- crash safety --------------------------------------------------------------------------------


def test_sigkill_during_an_async_save_resumes_from_the_last_complete_checkpoint(
    reference_run, tmp_path
):
    ref_dir, ref_results = reference_run
    workdir = tmp_path / "killed"
    ckpt_dir = workdir / "checkpoints"
    # The child sees the same 8 simulated devices as this process (conftest's XLA_FLAGS), so
    # its steps are the reference run's steps bit for bit.
    log = tmp_path / "train.log"
    with log.open("w") as out:
        killed = subprocess.Popen(
            [sys.executable, "train.py", f"--workdir={workdir}", *CRASH_FLAGS],
            cwd=ROOT,
            env=dict(os.environ),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        complete, partial = _stop_during_a_save(killed, ckpt_dir, log, timeout=240)
        killed.kill()
        killed.wait(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    last_complete = complete[-1]
    assert partial[-1] > last_complete
    assert _checkpoint_steps(ckpt_dir)[1] == partial, "the kill left no half-written folder"
    assert not (workdir / "results.json").exists()
    logged = len(read_jsonl(workdir / "metrics.jsonl"))

    config = _crash_config()
    results = train_and_evaluate(config, workdir)

    resumed = read_jsonl(workdir / "metrics.jsonl")[logged:]
    first_window = min(r["step"] for r in resumed if r["kind"] == "train")
    # Resumed from the last complete step, not from the half-written one nor from scratch.
    assert first_window == last_complete + config.train.log_every_steps
    assert _checkpoint_steps(ckpt_dir)[1] == []
    step_a, state_a = _restore_latest(ref_dir)
    step_b, state_b = _restore_latest(workdir)
    assert step_a == step_b == 16
    jax.tree.map(np.testing.assert_array_equal, state_a["params"], state_b["params"])
    assert results["test"] == ref_results["test"]
    assert results["valid"] == ref_results["valid"]


# -- determinism ---------------------------------------------------------------------------------


def test_xdeepfm_twice_gives_bit_identical_parameters_and_metrics(reference_run, tmp_path):
    ref_dir, ref_results = reference_run
    results = train_and_evaluate(_crash_config(), tmp_path)
    _assert_same_run(ref_dir, ref_results, tmp_path, results)


def _tiny_bert4rec_config() -> ConfigDict:
    config = one_layer_bert4rec(test_train_bert4rec.small_config())
    config.data.subsample = 0.1
    config.train.max_predictions = 4
    # Dropout and cloze masking draw random numbers at every step: both stay on.
    assert config.model.dropout > 0 and config.data.mask_prob > 0
    return config


def test_bert4rec_twice_gives_bit_identical_parameters_and_metrics(tmp_path):
    config = _tiny_bert4rec_config()
    results_a = train_and_evaluate(config, tmp_path / "a")
    results_b = train_and_evaluate(config, tmp_path / "b")
    _assert_same_run(tmp_path / "a", results_a, tmp_path / "b", results_b)


# -- numerical safety: training ------------------------------------------------------------------


def _saved_states(workdir: Path) -> dict[int, Any]:
    ckpt = Checkpointer(workdir, keep=2)
    steps = ckpt.all_steps()
    ckpt.close()
    return {step: _restore_latest(workdir, step)[1] for step in steps}


def _all_finite(tree: Any) -> bool:
    return all(bool(np.all(np.isfinite(x))) for x in jax.tree.leaves(tree))


def test_diverging_loss_stops_with_the_step_range_and_keeps_the_checkpoint_before(tmp_path):
    config = small_config()
    config.train.num_epochs = 1
    # Warm-up from 0 over 8 steps towards 1e12, unclipped: step 1 leaves the parameters as
    # they are, step 2 throws them to ~1e11, and the CIN's products then overflow.
    config.train.learning_rate = 1e12
    config.train.warmup_steps = 8
    config.train.clip_norm = 0.0
    config.checkpoint.every_steps = 2
    with pytest.raises(TrainingError) as info:
        train_and_evaluate(config, tmp_path)
    match = re.search(
        r"at step (\d+) \(first non-finite value between steps (\d+) and (\d+)\)", str(info.value)
    )
    assert match, str(info.value)
    bad_step, window_start, window_end = map(int, match.groups())
    assert window_start <= bad_step == window_end
    states = _saved_states(tmp_path)
    assert states, "no checkpoint from before the divergence was kept"
    assert max(states) < bad_step
    for step, state in states.items():
        assert int(state["step"]) == step
        assert _all_finite(state), f"checkpoint {step} holds non-finite values"
    assert not (tmp_path / "results.json").exists()
    train_losses = [r["loss"] for r in read_jsonl(tmp_path / "metrics.jsonl") if "loss" in r]
    assert train_losses and all(np.isfinite(train_losses))


def test_an_update_that_makes_the_parameters_nan_is_never_checkpointed(tmp_path):
    config = small_config()
    config.train.num_epochs = 1
    # Adam without its epsilon divides 0 by 0 for every parameter whose gradient is still 0
    # (embedding rows of values the first batch lacks): the first update writes NaN while the
    # first loss, computed before it, is finite.
    config.train.eps = 0.0
    config.train.log_every_steps = 1
    config.checkpoint.every_steps = 1
    config.checkpoint.async_save = False
    with pytest.raises(TrainingError, match="step"):
        train_and_evaluate(config, tmp_path)
    for step, state in _saved_states(tmp_path).items():
        assert _all_finite(state["params"]), f"checkpoint {step} holds NaN parameters"


# -- numerical safety: input files ---------------------------------------------------------------

# (file layout, file name, text with "{bad}" for one rating, the line of that rating)
RATING_FILES = {
    "atomic": (
        "d.inter",
        "user_id:token\titem_id:token\trating:float\n1\t2\t4\n1\t3\t{bad}\n",
        3,
    ),
    "u.data": ("u.data", "1\t2\t4\t881250949\n\n1\t3\t{bad}\t881250950\n", 3),
    "ratings.dat": ("ratings.dat", "1::2::4::978300760\n1::3::{bad}::978300761\n", 2),
    "ratings.csv": (
        "ratings.csv",
        "userId,movieId,rating,timestamp\n1,2,4.5,964982703\n1,3,{bad},964982704\n",
        3,
    ),
    "delimited": ("log.csv", "user,item,rating\na,b,1\na,c,{bad}\n", 3),
    "kuairec": ("small_matrix.csv", "user_id,video_id,watch_ratio\n1,2,0.5\n1,3,{bad}\n", 3),
}


def _load_rating_file(layout: str, folder: Path, file: str) -> Any:
    if layout == "atomic":
        return load_atomic(folder, "d")
    if layout == "delimited":
        return load_delimited(
            folder / file, columns={"user": "user", "item": "item", "rating": "rating"}
        )
    if layout == "kuairec":
        return load_kuairec(folder)
    return load_grouplens(folder)


@pytest.mark.parametrize("bad", ["nan", "NaN", "inf", "-inf", "1e999"])
@pytest.mark.parametrize("layout", sorted(RATING_FILES))
def test_non_finite_ratings_are_refused_at_load_naming_file_and_line(tmp_path, layout, bad):
    file, text, line = RATING_FILES[layout]
    (tmp_path / file).write_text(text.format(bad=bad))
    with pytest.raises(DataError, match=rf"{re.escape(file)}, line {line}: rating must be"):
        _load_rating_file(layout, tmp_path, file)
    # The same file with a finite rating there loads.
    (tmp_path / file).write_text(text.format(bad="1"))
    assert _load_rating_file(layout, tmp_path, file).num_interactions == 2


@pytest.fixture(scope="module")
def ml100k():
    return load_ml100k()


def test_non_finite_item_vectors_are_refused_naming_the_item(ml100k):
    vectors = np.zeros((ml100k.num_items, 4), dtype=np.float32)
    assert dataclasses.replace(ml100k, item_vectors=vectors).item_vectors is vectors
    for value in (np.nan, np.inf, -np.inf):
        vectors[7, 2] = value
        with pytest.raises(DataError, match=rf"item_vectors row 7 \(item {ml100k.item_ids[7]}\)"):
            dataclasses.replace(ml100k, item_vectors=vectors)


def test_infinite_item_numbers_are_refused_and_nan_means_missing(ml100k):
    year = ml100k.item_numeric["year"].copy()
    year[3] = np.inf
    with pytest.raises(DataError, match="item feature 'year' must be finite"):
        dataclasses.replace(ml100k, item_numeric={"year": year})
    # NaN is a missing value: the encoder gives it the training mean, i.e. 0 after scaling.
    year[3] = np.nan
    ds = dataclasses.replace(ml100k, item_numeric={"year": year})
    encoder = FeatureEncoder.fit(ds, [FieldSpec("year", "numeric")])
    num = encoder.encode_pairs(np.zeros(2, np.int32), np.array([3, 4]), ds)["num"]
    assert num[0, 0] == 0.0 and np.all(np.isfinite(num)) and num[1, 0] != 0.0


@pytest.mark.parametrize("bad", ["inf", "-inf", "1e39"])
def test_atomic_item_numbers_beyond_float32_are_refused_naming_file_and_line(tmp_path, bad):
    (tmp_path / "d.inter").write_text("user_id:token\titem_id:token\n1\ta\n1\tb\n")
    (tmp_path / "d.item").write_text(f"item_id:token\tduration:float\na\t12.5\nb\t{bad}\n")
    with pytest.raises(DataError, match=r"d\.item, line 3: column 'duration'"):
        load_atomic(tmp_path, "d")
    (tmp_path / "d.item").write_text("item_id:token\tduration:float\na\t12.5\nb\tnan\n")
    duration = load_atomic(tmp_path, "d").item_numeric["duration"]
    assert duration[0] == 12.5 and np.isnan(duration[1])
