"""End to end: train.py and train_and_evaluate on xDeepFM / Wide & Deep, resume after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from configs import widedeep_ml100k, xdeepfm_ml100k
from shortrec_jax.training.ctr_task import CTRTask
from shortrec_jax.training.logger import read_jsonl
from shortrec_jax.training.loop import train_and_evaluate
from shortrec_jax.training.parallel import pmap_step
from shortrec_jax.training.run import load_run
from shortrec_jax.training.steps import TrainState
from shortrec_jax.training.task_common import model_config
from tests.parallel_steps import single_and_sharded_steps
from tests.small_runs import quick_run

ROOT = Path(__file__).resolve().parents[1]

# A shrunk default config: 10% of ml-100k, a small model, two epochs.
SMALL = [
    "--config.data.subsample=0.1",
    "--config.model.embed_dim=4",
    "--config.model.cin_layers=8,8",
    "--config.model.mlp_layers=16",
    "--config.train.batch_size=512",
    "--config.train.num_epochs=2",
    "--config.train.warmup_steps=2",
    "--config.train.log_every_steps=2",
    "--config.train.max_steps_in_flight=1",
    "--config.eval.batch_size=1024",
    "--config.log.progress_bar=False",
]


def small_config(module=xdeepfm_ml100k):
    config = module.get_config()
    config.data.subsample = 0.1
    config.model.embed_dim = 4
    config.model.mlp_layers = (16,)
    if config.model.use_cin:
        config.model.cin_layers = (8, 8)
    return quick_run(config, batch_size=512, eval_batch_size=1024)


@pytest.mark.parametrize("module", [xdeepfm_ml100k, widedeep_ml100k])
def test_train_and_evaluate_on_8_devices(tmp_path, module):
    results = train_and_evaluate(small_config(module), tmp_path)
    # 10% of ml-100k, two epochs of a tiny model: clearly better than chance.
    assert results["test"]["auc"] > 0.6
    assert results["epochs"] == 2
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["test"]["auc"] == pytest.approx(results["test"]["auc"])
    records = read_jsonl(tmp_path / "metrics.jsonl")
    kinds = [r["kind"] for r in records]
    assert kinds.count("valid") == 2 and kinds[-1] == "test"
    assert all(np.isfinite(r["loss"]) for r in records if r["kind"] == "train")
    assert (tmp_path / "encoders" / "features.json").exists()
    assert (
        json.loads((tmp_path / "config.json").read_text())["model"]["name"]
        == module.get_config().model.name
    )


def test_resume_refuses_another_experiment(tmp_path):
    config = small_config()
    config.train.num_epochs = 1
    train_and_evaluate(config, tmp_path)
    config.model.embed_dim = 8
    with pytest.raises(ValueError, match=r"model\.embed_dim"):
        train_and_evaluate(config, tmp_path)


def test_unknown_model_field_is_named():
    config = small_config()
    config.model.cin_layer = (4,)
    with pytest.raises(ValueError, match=r"model: unknown fields \[.cin_layer.\]"):
        model_config(config, spec=None)


def test_xdeepfm_step_sharded_equals_pmap_equals_single_device(tmp_path):
    # 5 padding rows: uneven padding across devices.
    out = single_and_sharded_steps(CTRTask, small_config(), tmp_path, seed=0, padding=5)
    params, tx, per_device, rng = out["initial"]
    state, _ = pmap_step(per_device)(TrainState.create(params, tx), out["batch"], rng)
    for stepped in (out["sharded"][0], jax.device_get(state.params)):
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6),
            stepped,
            out["single"][0],
        )
    # The step did change the parameters.
    moved = jax.tree.map(lambda a, b: float(np.abs(a - b).max()), out["single"][0], params)
    assert max(jax.tree.leaves(moved)) > 0


def run_train(workdir: Path, extra: list[str], devices: int = 1) -> subprocess.Popen:
    """`train.py` on the shrunk config in a subprocess with `devices` simulated CPU devices."""
    env = {
        **os.environ,
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
        "JAX_PLATFORMS": "cpu",
    }
    return subprocess.Popen(
        [sys.executable, "train.py", f"--workdir={workdir}", *SMALL, *extra],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def latest_params(workdir: Path):
    """(step, parameters) of the latest checkpoint of a run directory."""
    run = load_run(workdir, which="latest")
    return run.step, jax.device_get(run.params)


def test_killed_mid_epoch_and_resumed_ends_with_the_same_parameters(tmp_path):
    every = ["--config.checkpoint.every_steps=4", "--config.checkpoint.async_save=False"]
    straight = run_train(tmp_path / "straight", every)
    out, _ = straight.communicate(timeout=300)
    assert straight.returncode == 0, out

    killed = run_train(tmp_path / "killed", every)
    ckpt_dir = tmp_path / "killed" / "checkpoints"
    deadline = time.time() + 300
    # Kill as soon as the first mid-epoch checkpoint (step 4 of 16 per epoch) is complete.
    while time.time() < deadline and not (ckpt_dir / "4").is_dir():
        time.sleep(0.05)
    assert (ckpt_dir / "4").is_dir(), "no mid-epoch checkpoint appeared"
    killed.send_signal(signal.SIGKILL)
    killed.communicate(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed" / "results.json").exists()

    resumed = run_train(tmp_path / "killed", every)
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out
    step_a, state_a = latest_params(tmp_path / "straight")
    step_b, state_b = latest_params(tmp_path / "killed")
    assert step_a == step_b
    jax.tree.map(np.testing.assert_array_equal, state_a, state_b)
    a = json.loads((tmp_path / "straight" / "results.json").read_text())
    b = json.loads((tmp_path / "killed" / "results.json").read_text())
    assert a["test"] == b["test"]
