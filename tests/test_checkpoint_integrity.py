"""Checkpoints verified on restore, failed saves, and starts refused before anything is written.

The corrupt checkpoints are made as a hostile user or a failing disk would: bytes of a
committed step overwritten in place (same size), or its JSON metadata replaced. A resumed
run must then continue from the newest intact step, bit-identically to a run that resumes
from that step directly, and `load_run` must serve it.
"""

from __future__ import annotations

import errno
import json
import re
import shutil
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ml_collections import ConfigDict

from shortrec_jax.training.checkpoint import (
    CORRUPT_DIR,
    CheckpointError,
    _fingerprints,
    _host_fingerprint,
    non_finite_leaf,
    state_checksums,
)
from shortrec_jax.training.config_checks import RULES, ConfigError, validate_config
from shortrec_jax.training.guards import RunDirectoryError
from shortrec_jax.training.loop import train_and_evaluate
from shortrec_jax.training.run import load_run
from tests.test_fuzz import _train_py
from tests.test_reliability import _assert_same_run, _checkpoint_steps, _restore_latest
from tests.test_train_ctr import small_config

# One epoch of 16 steps, saved at step 8 (mid-epoch) and 16 (end, with validation metrics).
STEPS = (8, 16)


def test_checksums_are_hand_computed_sums_of_the_words():
    # Words 1, 2, 3: sum 6; weighted by 1, 3, 5: 1 + 6 + 15 = 22.
    words = np.array([1, 2, 3], np.uint32)
    assert _host_fingerprint(words).tolist() == [6, 22]
    assert jax.device_get(_fingerprints([jax.numpy.asarray(words)]))[0].tolist() == [6, 22]
    # float32 1.0 is the word 0x3F800000.
    assert state_checksums({"w": np.ones((), np.float32)}) == {"w": "float32[]:3f8000003f800000"}


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "int32", "uint8", "bool"])
def test_checksums_in_host_memory_equal_the_compiled_ones(dtype):
    """Arrays on CPU are summed by NumPy, others by a compiled program (accelerators, several
    processes): the same two numbers, wrapping modulo 2**32 included."""
    rng = np.random.default_rng(0)
    # The weights alone sum to n**2 > 2**32, so the sums wrap; n divides over 8 devices.
    n = 8 * 40_000
    if dtype == "bool":
        x = rng.integers(0, 2, n).astype(bool)
    else:
        itemsize = np.dtype(jax.numpy.dtype(dtype)).itemsize
        x = np.frombuffer(rng.bytes(n * itemsize), jax.numpy.dtype(dtype))
    mesh = jax.make_mesh((jax.device_count(),), ("d",))
    sharded = jax.device_put(x, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("d")))
    host = _host_fingerprint(x)
    compiled = jax.device_get(_fingerprints([sharded]))[0]
    assert host.tolist() == compiled.tolist()
    assert state_checksums({"x": sharded}) == state_checksums({"x": x})


def test_non_finite_leaf_names_the_array_in_host_memory_and_on_devices():
    state = {"a": np.ones(3, np.float32), "b": np.array([1.0, np.nan], np.float32)}
    assert non_finite_leaf(state) == "b"
    assert non_finite_leaf(jax.device_put(state)) == "b"
    assert non_finite_leaf({"a": np.ones(3, np.float32)}) is None


def _config() -> ConfigDict:
    config = small_config()
    config.train.num_epochs = 1
    config.checkpoint.every_steps = 8
    config.checkpoint.keep = 3
    return config


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run with intact checkpoints at STEPS (copied, never changed, by tests)."""
    workdir = tmp_path_factory.mktemp("finished")
    train_and_evaluate(_config(), workdir)
    assert _checkpoint_steps(workdir / "checkpoints") == (list(STEPS), [])
    return workdir


@pytest.fixture(scope="module")
def resumed_from_8(finished_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """The run resumed directly from step 8 (step 16 deleted): (run directory, results)."""
    workdir = tmp_path_factory.mktemp("from8") / "run"
    shutil.copytree(finished_run, workdir)
    shutil.rmtree(workdir / "checkpoints" / "16")
    return workdir, train_and_evaluate(_config(), workdir)


def _largest_data_file(step_dir: Path) -> Path:
    files = [p for p in (step_dir / "state").rglob("*") if p.is_file()]
    return max(files, key=lambda p: p.stat().st_size)


def _overwrite_in_place(path: Path) -> None:
    """4 KiB (or a quarter of a small file) of seeded random bytes in the middle, same size."""
    size = path.stat().st_size
    count = min(4096, size // 4)
    garbage = np.random.default_rng(0).integers(0, 256, count, dtype=np.uint8).tobytes()
    with open(path, "r+b") as f:
        f.seek(size // 2)
        f.write(garbage)
    assert path.stat().st_size == size


# How each kind of damage is done to a step folder.
DAMAGE = {
    "array bytes": lambda step: _overwrite_in_place(_largest_data_file(step)),
    "meta JSON": lambda step: (step / "meta" / "metadata").write_text('{"epoch": 1, "be'),
    "meta values": lambda step: (step / "meta" / "metadata").write_text(
        json.dumps({**json.loads((step / "meta" / "metadata").read_text()), "epoch": 7})
    ),
    "state _METADATA": lambda step: (step / "state" / "_METADATA").write_text("{]"),
}


def _corrupt_copy(finished_run: Path, tmp_path: Path, damage: str, steps=(16,)) -> Path:
    workdir = tmp_path / "run"
    shutil.copytree(finished_run, workdir)
    for step in steps:
        DAMAGE[damage](workdir / "checkpoints" / str(step))
    return workdir


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_load_run_skips_a_corrupt_latest_checkpoint_with_one_warning(
    finished_run, tmp_path, capfd, damage
):
    workdir = _corrupt_copy(finished_run, tmp_path, damage)
    # The newest intact step, with the parameters it was saved with; the bad one left alone.
    run = load_run(workdir, which="latest")
    assert run.step == 8
    _, saved = _restore_latest(finished_run, 8)
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(run.params), saved["params"])
    warning = capfd.readouterr().err.strip().splitlines()
    assert len(warning) == 1 and str(workdir / "checkpoints" / "16") in warning[0], warning
    assert (workdir / "checkpoints" / "16").is_dir()
    # The best checkpoint (16, the only one with validation metrics) is the corrupt one: the
    # newest intact one stands in.
    assert load_run(workdir, which="best").step == 8


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["array bytes", "meta JSON"])
def test_resume_skips_a_corrupt_latest_checkpoint_bit_identically(
    finished_run, resumed_from_8, tmp_path, damage
):
    workdir = _corrupt_copy(finished_run, tmp_path, damage)
    # From step 8, as if step 16 had never been saved; the bad step is set aside.
    results = train_and_evaluate(_config(), workdir)
    assert (workdir / CORRUPT_DIR / "16").is_dir()
    _assert_same_run(workdir, results, *resumed_from_8)


def test_no_intact_checkpoint_is_one_line_that_says_what_to_do(finished_run, tmp_path):
    workdir = _corrupt_copy(finished_run, tmp_path, "array bytes", steps=STEPS)
    for attempt in (lambda: load_run(workdir, which="latest"), lambda: _resume(workdir)):
        with pytest.raises(CheckpointError) as info:
            attempt()
        message = str(info.value)
        assert "\n" not in message
        assert message.startswith(f"no intact checkpoint in {workdir / 'checkpoints'}")
        assert "delete the run directory to start again" in message
    # Nothing was moved: the directory is as it was.
    assert _checkpoint_steps(workdir / "checkpoints") == (list(STEPS), [])
    assert not (workdir / CORRUPT_DIR).exists()


def _resume(workdir: Path) -> dict[str, Any]:
    return train_and_evaluate(_config(), workdir)


def test_a_failed_asynchronous_save_stops_the_run_at_the_next_step(tmp_path, monkeypatch):
    from orbax.checkpoint._src.handlers import json_checkpoint_handler

    real_save = json_checkpoint_handler.JsonCheckpointHandler._save_fn

    # The disk fills after the first checkpoint (step 4): every later write of a JSON item
    # fails in the background thread, as a full disk makes it fail.
    async def full_disk(self, item, directory):
        folders = [re.match(r"(\d+)\.orbax-checkpoint-tmp", p) for p in Path(directory).parts]
        if max(int(m.group(1)) if m else 0 for m in folders) > 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        return await real_save(self, item, directory)

    monkeypatch.setattr(json_checkpoint_handler.JsonCheckpointHandler, "_save_fn", full_disk)
    config = _config()
    config.checkpoint.every_steps = 4
    config.train.log_every_steps = 1
    with pytest.raises(CheckpointError) as info:
        train_and_evaluate(config, tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert message == (
        f"saving a checkpoint in {tmp_path / 'checkpoints'} failed (no space left on the "
        f"device); the last complete checkpoint is {tmp_path / 'checkpoints' / '4'}; free "
        f"space on the device holding {tmp_path} and run the same command to resume"
    )
    complete, _ = _checkpoint_steps(tmp_path / "checkpoints")
    assert complete == [4]
    # The failed save of step 8 is noticed within a few steps, not at the end of the epoch.
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert max(r["step"] for r in logged if "loss" in r) < 16
    monkeypatch.undo()
    assert load_run(tmp_path, which="latest").step == 4


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("train.batch_size", 0, r"config train\.batch_size=0 is invalid: expected a whole"),
        ("train.learning_rate", -1.0, r"config train\.learning_rate=-1\.0 is invalid"),
        ("checkpoint.keep", 0, r"config checkpoint\.keep=0 is invalid"),
        ("train.num_epochs", 0, r"config train\.num_epochs=0 is invalid: .* >= 1"),
        ("model.embed_dim", -1, r"config model \(xdeepfm\): embed_dim must be >= 1, got -1"),
        ("model.dropout", 1.5, r"config model \(xdeepfm\): dropout must be in \[0, 1\)"),
        ("data.split", "nonsense", r"config data\.split='nonsense' is invalid: expected one of"),
    ],
)
def test_a_refused_config_touches_nothing_and_the_corrected_command_runs(
    tmp_path, key, value, message
):
    workdir = tmp_path / "run"
    config = _config()
    section, field = key.split(".")
    config[section][field] = value
    with pytest.raises(ConfigError, match=message):
        train_and_evaluate(config, workdir)
    assert not workdir.exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError):
        train_and_evaluate(config, tmp_path / "empty")
    assert list((tmp_path / "empty").iterdir()) == []


@pytest.mark.slow
def test_a_refused_start_leaves_the_directory_as_it_was_and_the_fix_then_runs(
    tmp_path, monkeypatch
):
    workdir = tmp_path / "run"
    bad = _config()
    bad.train.batch_size = 0
    with pytest.raises(ConfigError):
        train_and_evaluate(bad, workdir)
    # The free-space refusal comes after the data are loaded and the encoders fitted.
    monkeypatch.setattr(
        "shortrec_jax.training.guards.shutil.disk_usage",
        lambda path: shutil._ntuple_diskusage(1 << 30, 1 << 30, 1 << 20),
    )
    with pytest.raises(RunDirectoryError, match=r"has 1\.0 MiB free"):
        train_and_evaluate(_config(), workdir)
    assert not workdir.exists()
    monkeypatch.undo()
    results = train_and_evaluate(_config(), workdir)
    assert results["best_step"] == 16


@pytest.mark.parametrize(
    ("flag", "line"),
    [
        ("--config.train.num_epochs=0", "error: config train.num_epochs=0 is invalid"),
        ("--config.model.dropout=1.5", "error: config model (xdeepfm): dropout must be in"),
    ],
)
def test_train_py_refuses_a_bad_value_in_one_line_and_writes_nothing(tmp_path, flag, line):
    done = _train_py(tmp_path, flag)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith(line), done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "run").exists()


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    key=st.sampled_from(sorted(RULES)),
    value=st.one_of(
        st.integers(-3, 3),
        st.floats(allow_nan=True, allow_infinity=True),
        st.booleans(),
        st.text(max_size=5),
        st.lists(st.floats(0, 1), max_size=4),
    ),
)
def test_any_config_value_passes_or_is_one_config_error_naming_its_key(key, value):
    config = _config()
    section, field = key.split(".") if "." in key else (None, key)
    target = config if section is None else config[section]
    if field not in target:
        return
    with target.ignore_type():
        target[field] = value
    try:
        validate_config(config)
    except ConfigError as e:
        assert str(e).startswith(f"config {key}="), str(e)
