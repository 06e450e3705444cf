"""Evaluation inside the training loop: running the eval step over a part, when to validate,
and how a validation result moves the best-so-far and the early-stopping counter.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from ml_collections import ConfigDict

from shortrec_jax.training.contract import Session, Task
from shortrec_jax.training.parallel import Partitioner
from shortrec_jax.training.resume import save_epoch
from shortrec_jax.training.steps import TrainState

PyTree = Any


def add_sums(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    """Key-wise a + b (keys of `b`; a key missing from `a` counts as 0)."""
    return {k: a.get(k, 0.0) + v for k, v in b.items()}


def evaluate_part(
    task: Task,
    eval_step: Any,
    partitioner: Partitioner,
    params: PyTree,
    part: str,
    batch_size: int,
    max_in_flight: int = 4,
) -> dict[str, float]:
    """Runs the eval step over a whole part and returns its metrics.

    Outputs stay on the devices until the part is done, then come to the host in one
    transfer (one gather across processes), so the host does not wait on every batch.

    Args:
      task: the model family.
      eval_step: `Partitioner.compile_eval_step` of the task's predict.
      partitioner: the run's devices.
      params: the parameters to evaluate.
      part: "valid" or "test".
      batch_size: the global eval batch size, a multiple of `partitioner.data_size`.
      max_in_flight: eval steps queued before the host waits for the oldest (see DESIGN.md).
    """
    rows = partitioner.process_rows(batch_size)
    outputs, weights, sums = [], [], []
    host_batches = task.eval_batches(part, batch_size, partitioner.data_size, rows)
    with partitioner.prefetch_to_devices(host_batches) as device_batches:
        for batch in device_batches:
            per_example, batch_sums = eval_step(params, batch)
            outputs.append(per_example)
            weights.append(batch["weight"])
            sums.append(batch_sums)
            if len(outputs) > max_in_flight:
                jax.block_until_ready(outputs[-max_in_flight - 1])
    outputs, weights, sums = partitioner.to_host((outputs, weights, sums))
    per_example = np.concatenate(outputs)[np.concatenate(weights) > 0]
    total: dict[str, float] = {}
    for batch_sums in sums:
        total = add_sums(total, {k: float(v) for k, v in batch_sums.items()})
    return task.eval_metrics(part, per_example, total)


def evaluate(session: Session, params: PyTree, part: str) -> dict[str, float]:
    """`evaluate_part` with the session's task, devices and the config's eval batch size."""
    return evaluate_part(
        session.task,
        session.eval_step,
        session.partitioner,
        params,
        part,
        session.config.eval.batch_size,
        session.config.train.max_steps_in_flight,
    )


def validate_now(config: ConfigDict, epoch: int) -> bool:
    """Whether to validate (and save) after `epoch` (counted from 0): after every epoch,
    unless `train.eval_every_steps` sets a cadence in steps (see `validate_at_step`)."""
    del epoch
    return not config.train.eval_every_steps


def validate_at_step(config: ConfigDict, step: int) -> bool:
    """Whether to validate after global `step` (counted from 1): every
    `train.eval_every_steps` steps when that is set. With the default 0, `validate_now`."""
    every = config.train.eval_every_steps
    return bool(every) and step % every == 0


def patience_spent(config: ConfigDict, meta: dict[str, Any]) -> bool:
    """Whether `train.early_stopping_patience` validations in a row brought no improvement."""
    patience = config.train.early_stopping_patience
    return bool(patience) and meta["bad_epochs"] >= patience


def record_validation(
    task: Task, meta: dict[str, Any], valid: dict[str, float], epoch: int
) -> bool:
    """Updates the best value, its epoch (counted from 1) and the early-stopping counter in
    `meta` with the validation metrics `valid` measured during `epoch` (counted from 0).

    `meta["bad_epochs"]` counts validations without improvement (one per epoch with the
    default cadence). Returns whether this one improved on the best.
    """
    value = valid[task.best_metric]
    best = meta["best"]
    improved = best is None or (value > best if task.best_mode == "max" else value < best)
    if improved:
        meta.update(best=value, best_epoch=epoch + 1, bad_epochs=0)
    else:
        meta["bad_epochs"] += 1
    return improved


def validate_and_save(
    session: Session, state: TrainState, meta: dict[str, Any], epoch: int
) -> None:
    """Validates `state` (reached during `epoch`, counted from 0), logs it and saves it.

    With the default cadence every validated epoch end is saved (the latest for resume, the
    best kept by the checkpointer). With `train.eval_every_steps` only a new best is saved:
    a resumed run restarts from it and, batches and dropout being functions of (seed, step),
    retraces the same steps.
    """
    config = session.config
    step = int(jax.device_get(state.step))
    valid = evaluate(session, state.eval_params, "valid")
    improved = record_validation(session.task, meta, valid, epoch)
    meta["epoch"] = epoch + 1
    session.logger.write(step, "valid", {"epoch": step / session.steps_per_epoch, **valid})
    print_metrics(f"step {step} (epoch {epoch + 1}/{config.train.num_epochs}) valid", valid)
    if improved or not config.train.eval_every_steps:
        save_epoch(session.ckpt, step, state, meta, valid)


def print_metrics(title: str, metrics: dict[str, float]) -> None:
    """Prints the float metrics on one line, from process 0 only."""
    if jax.process_index() == 0:
        text = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float))
        print(f"{title}: {text}", flush=True)
