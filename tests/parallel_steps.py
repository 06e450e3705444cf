"""One optimiser step of a sequence task on one device and on every device, for the tests
that hold the sharded step equal to the single-device step."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax

from shortrec_jax.training.optim import make_optimizer
from shortrec_jax.training.parallel import Partitioner
from shortrec_jax.training.steps import TrainState, make_train_step


def single_and_sharded_steps(
    make_task: Callable[[Any], Any],
    config: Any,
    workdir: Path,
    *,
    seed: int = 1,
    padding: int = 3,
) -> dict[str, Any]:
    """Prepares `make_task(config)` in `workdir` with dropout and the warm-up off, then steps
    it once from the same parameters (drawn from `seed`) on a 64-row batch whose last
    `padding` rows have weight 0.

    Returns:
      {"single": (params, sums), "sharded": (params, sums), "batch": the host batch,
      "initial": (params, tx, per-device step, rng) for a further wrapper such as pmap}.
    """
    # Dropout masks differ per device by design; the first warm-up step has learning rate 0.
    config.model.dropout = 0.0
    if "attention_dropout" in config.model:
        config.model.attention_dropout = 0.0
    config.train.warmup_steps = 0
    task = make_task(config)
    task.prepare(workdir)
    tx = make_optimizer(config.train, 10)
    rng = jax.random.key(seed)
    params = task.init_params(rng)
    batch = next(task.train_batches(0, 64, 8))
    batch["weight"][-padding:] = 0.0
    per_device = make_train_step(task.loss_sums, tx)
    out: dict[str, Any] = {"batch": batch, "initial": (params, tx, per_device, rng)}
    for name, part in (("single", Partitioner(jax.devices()[:1])), ("sharded", Partitioner())):
        state = part.init_state(lambda _: TrainState.create(params, tx), rng)
        state, sums = part.compile_train_step(per_device)(state, part.shard_batch(batch), rng)
        out[name] = (jax.device_get(state.params), jax.device_get(sums))
    return out
