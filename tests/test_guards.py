"""Run-directory safety: one writer, clean stop on SIGTERM, clear errors before training."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shortrec_jax.training.guards import (
    RunDirectoryError,
    RunLock,
    StopSignals,
    check_writable,
)
from shortrec_jax.training.loop import train_and_evaluate
from tests.test_train_ctr import ROOT, SMALL, small_config


def test_second_lock_on_a_run_directory_is_refused_with_the_holders_pid(tmp_path):
    with RunLock(tmp_path):
        second = RunLock(tmp_path)
        with pytest.raises(RunDirectoryError, match=f"pid {os.getpid()}"):
            second.__enter__()
    with RunLock(tmp_path):  # released on exit
        pass


def test_a_training_run_refuses_a_locked_directory(tmp_path):
    with RunLock(tmp_path), pytest.raises(RunDirectoryError, match="in use by another"):
        train_and_evaluate(small_config(), tmp_path)


def test_lock_of_a_killed_process_does_not_block(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from shortrec_jax.training.guards import RunLock; "
            "l = RunLock(sys.argv[1]).__enter__(); print('locked', flush=True); time.sleep(60)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(RunDirectoryError):
        RunLock(tmp_path).__enter__()
    holder.kill()
    holder.wait()
    with RunLock(tmp_path):
        pass


def test_unwritable_or_full_directory_fails_before_training(tmp_path):
    with pytest.raises(RunDirectoryError, match="MiB free"):
        check_writable(tmp_path, needed_bytes=2**62)
    target = tmp_path / "file"
    target.write_text("not a directory")
    with pytest.raises(RunDirectoryError, match="cannot create the run directory"):
        train_and_evaluate(small_config(), target / "run")


def test_stop_signals_turn_sigterm_into_a_request():
    with StopSignals() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested and stop.received == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_sigterm_saves_and_the_same_command_resumes(tmp_path):
    env = {**os.environ, "XLA_FLAGS": "", "JAX_PLATFORMS": "cpu"}
    cmd = [sys.executable, "train.py", f"--workdir={tmp_path}", *SMALL]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    metrics = Path(tmp_path) / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and not (metrics.exists() and metrics.stat().st_size):
        time.sleep(0.05)  # training has started once the first metrics are logged
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, out
    assert "stopped by SIGTERM" in out
    steps = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
    assert steps, "no checkpoint was saved on SIGTERM"
    resumed = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert (tmp_path / "results.json").exists()
