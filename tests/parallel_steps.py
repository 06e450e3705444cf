"""One optimiser step of a sequence task on one device and on every device, for the tests
that hold the sharded step equal to the single-device step."""

from __future__ import annotations

from typing import Any

import jax

from shortrec_jax.training.optim import make_optimizer
from shortrec_jax.training.parallel import Partitioner
from shortrec_jax.training.steps import TrainState, make_train_step


def single_and_sharded_steps(task: Any, config: Any) -> dict[str, Any]:
    """Steps a prepared task once from the same parameters on a 64-row batch whose last 3
    rows have weight 0 (padding).

    Returns:
      {"single": (params, sums), "sharded": (params, sums), "batch": the host batch,
      "initial": (params, tx, per-device step, rng) for a further wrapper such as pmap}.
    """
    tx = make_optimizer(config.train, 10)
    rng = jax.random.key(1)
    params = task.init_params(rng)
    batch = next(task.train_batches(0, 64, 8))
    batch["weight"][-3:] = 0.0
    per_device = make_train_step(task.loss_sums, tx)
    out: dict[str, Any] = {"batch": batch, "initial": (params, tx, per_device, rng)}
    for name, part in (("single", Partitioner(jax.devices()[:1])), ("sharded", Partitioner())):
        state = part.init_state(lambda _: TrainState.create(params, tx), rng)
        state, sums = part.compile_train_step(per_device)(state, part.shard_batch(batch), rng)
        out[name] = (jax.device_get(state.params), jax.device_get(sums))
    return out
