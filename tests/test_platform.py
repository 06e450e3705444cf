"""The automatic CPU layout: what it chooses, what it leaves alone, and that it trains alike."""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from shortrec_jax import platform
from shortrec_jax.training.ctr_task import CTRTask
from shortrec_jax.training.optim import make_optimizer
from shortrec_jax.training.parallel import Partitioner
from shortrec_jax.training.steps import TrainState, make_train_step
from tests.test_train_ctr import ROOT, small_config


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, 4),
        ({"JAX_PLATFORMS": "cpu"}, 4),
        ({"JAX_PLATFORMS": "cuda,cpu"}, 4),
        ({"XLA_FLAGS": "--xla_cpu_enable_fast_math=false"}, 4),
        # The user's choices win.
        ({"XLA_FLAGS": "--xla_force_host_platform_device_count=1"}, None),
        ({"JAX_NUM_CPU_DEVICES": "3"}, None),
        ({"JAX_PLATFORMS": "cuda"}, None),
        ({"JAX_PLATFORMS": "tpu"}, None),
    ],
)
def test_device_count_is_one_per_core_unless_the_user_chose(environ, expected):
    # 6 cores: 4 devices, the largest power of two that fits (batches split evenly).
    assert platform.cpu_device_count(environ, cores=6) == expected


@pytest.mark.parametrize(("cores", "expected"), [(0, 1), (1, 1), (2, 2), (3, 2), (8, 8), (96, 64)])
def test_device_count_is_the_largest_power_of_two_of_the_cores(cores, expected):
    assert platform.cpu_device_count({}, cores) == expected


def _devices_in_fresh_process(environ: dict[str, str]) -> tuple[str, int]:
    """(configure_cpu's line, JAX's device count) in a new process with this environment."""
    code = (
        "from shortrec_jax import platform; print(platform.configure_cpu()); "
        "import jax; print(jax.device_count())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environ, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    line, count = out.stdout.strip().splitlines()[-2:]
    return line, int(count)


def test_a_fresh_process_gets_one_cpu_device_per_core_and_keeps_a_users_count():
    base = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
    base["JAX_PLATFORMS"] = "cpu"
    line, count = _devices_in_fresh_process(base)
    assert count == platform.cpu_device_count({}, platform.usable_cores())
    assert line.startswith(f"{count} CPU device(s) for {platform.usable_cores()} core(s)")
    if sys.platform.startswith("linux"):
        assert "freed memory kept" in line
    _, count = _devices_in_fresh_process(
        {**base, "XLA_FLAGS": "--xla_force_host_platform_device_count=3"}
    )
    assert count == 3


def test_configure_cpu_after_jax_started_changes_nothing():
    jax.devices()  # the backends of this test session exist
    assert platform.configure_cpu({}).startswith("CPU layout unchanged")
    assert jax.device_count() == 8


def test_automatic_layout_trains_to_the_same_parameters_as_one_device(tmp_path):
    """A few steps of xDeepFM on the automatic device count (at most the 8 of this session)
    and on one device: the same parameters, up to float rounding."""
    config = small_config()
    config.model.dropout = 0.0  # dropout masks differ per device by design
    config.train.warmup_steps = 0  # the first warm-up step has learning rate 0
    task = CTRTask(config)
    task.prepare(tmp_path)
    count = min(platform.cpu_device_count({}, platform.usable_cores()), jax.device_count())
    # 2 cores give 2 devices; a 1-core machine would compare one device with itself.
    tx = make_optimizer(config.train, 10)
    rng = jax.random.key(0)
    params = {}
    for name, devices in (("one", jax.devices()[:1]), ("auto", jax.devices()[:count])):
        part = Partitioner(devices)
        state = part.init_state(lambda k: TrainState.create(task.init_params(k), tx), rng)
        step = part.compile_train_step(make_train_step(task.loss_sums, tx), part.shardings(state))
        for batch in list(task.train_batches(0, 128, count))[:4]:
            state, _ = step(state, part.shard_batch(batch), rng)
            jax.block_until_ready(state)  # one step at a time (see DESIGN.md)
        params[name] = jax.device_get(state.params)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
        params["auto"],
        params["one"],
    )
    moved = jax.tree.map(
        lambda a, b: float(np.abs(a - b).max()), params["one"], task.init_params(rng)
    )
    assert max(jax.tree.leaves(moved)) > 0
