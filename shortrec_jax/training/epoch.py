"""One training epoch: the steps, the once-per-window host synchronisation (finite check,
logging, progress bar), mid-epoch saves and stops on SIGINT/SIGTERM.

Speed: host batches are prepared and copied to the devices in a background thread ahead of
the steps; the host waits for the devices only once per logging window (and when more than
`train.max_steps_in_flight` steps are queued); every batch of a run has one shape, so each
step compiles once.
"""

from __future__ import annotations

import collections
import time
from typing import Any

import jax
import numpy as np
from ml_collections import ConfigDict

from shortrec_jax.training.contract import Session
from shortrec_jax.training.resume import save_and_stop, save_mid_epoch
from shortrec_jax.training.steps import TrainState
from shortrec_jax.training.validation import (
    add_sums,
    patience_spent,
    validate_and_save,
    validate_at_step,
)

PyTree = Any


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. the loss is no longer finite); the message says where."""


def _host_sums(tree: PyTree) -> dict[str, float]:
    return {k: float(v) for k, v in jax.device_get(tree).items()}


def _check_finite(history: list[tuple[int, dict[str, float]]], from_step: int) -> None:
    for step, sums in history:
        if not np.isfinite(sums["loss"]):
            raise TrainingError(
                f"the training loss is {sums['loss']} at step {step} (first non-finite value "
                f"between steps {from_step} and {step}); the last good checkpoint is kept. "
                "Lower train.learning_rate or set train.clip_norm."
            )
        if sums.get("nonfinite_params", 0.0) > 0:
            raise TrainingError(
                f"{sums['nonfinite_params']:.0f} parameters are not finite after the update of "
                f"step {step} (first non-finite update between steps {from_step} and {step}); "
                "the last good checkpoint is kept. Lower train.learning_rate, set "
                "train.clip_norm, or check train.eps."
            )


def _progress(config: ConfigDict, epoch: int, total: int, done: int) -> Any:
    if not config.log.progress_bar or jax.process_index() != 0:
        return None
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=done,
        desc=f"epoch {epoch + 1}/{config.train.num_epochs}",
        unit="step",
        leave=False,
        dynamic_ncols=True,
    )


def train_epoch(
    session: Session, state: TrainState, meta: dict[str, Any], *, epoch: int, skip: int
) -> TrainState:
    """One epoch, or its remainder after `skip` steps when resuming from a mid-epoch save.

    Batches and dropout depend only on (seed, epoch, step), so skipping the first `skip`
    batches of the epoch continues exactly where the interrupted run was. With
    `train.eval_every_steps`, validates at those steps (after checking the steps before are
    finite) and returns early once the early-stopping patience is spent.
    """
    train_cfg = session.config.train
    step = epoch * session.steps_per_epoch + skip
    end_of_epoch = (epoch + 1) * session.steps_per_epoch
    batch_size = train_cfg.batch_size
    partitioner = session.partitioner
    batches = session.task.train_batches(
        epoch, batch_size, partitioner.data_size, partitioner.process_rows(batch_size)
    )
    for _ in range(skip):
        next(batches)
    # A save is collective: with several processes, all must stop at the same step, so they
    # agree on it once per logging window instead of each reacting to its own signal.
    several = jax.process_count() > 1
    # Bound the steps in flight: many queued steps with collectives can stall on small hosts.
    in_flight: collections.deque[Any] = collections.deque()
    pending: list[tuple[int, Any]] = []
    window_start, window_time = step, time.time()
    progress = _progress(session.config, epoch, session.steps_per_epoch, skip)
    with partitioner.prefetch_to_devices(batches, size=train_cfg.prefetch) as device_batches:
        for batch in device_batches:
            state, sums = session.train_step(state, batch, session.train_rng)
            step += 1
            # A failed asynchronous save stops the run here, naming the cause.
            session.ckpt.check_saves()
            pending.append((step, sums))
            if not several and session.stop.requested:
                # Never save a state the pending steps have not been checked for.
                _check_finite([(s, _host_sums(x)) for s, x in pending], window_start + 1)
                save_and_stop(session.ckpt, state, meta, step, session.stop.received)
            in_flight.append(sums)
            if len(in_flight) > train_cfg.max_steps_in_flight:
                jax.block_until_ready(in_flight.popleft())
            validate = validate_at_step(session.config, step)
            if len(pending) < train_cfg.log_every_steps and step < end_of_epoch and not validate:
                continue
            _end_window(session, state, meta, pending, progress, window_start, window_time)
            pending, in_flight = [], collections.deque()
            if validate:
                validate_and_save(session, state, meta, epoch)
                if patience_spent(session.config, meta):
                    break
            window_start, window_time = step, time.time()
    if progress is not None:
        progress.close()
    return state


def _end_window(
    session: Session,
    state: TrainState,
    meta: dict[str, Any],
    pending: list[tuple[int, Any]],
    progress: Any,
    window_start: int,
    window_time: float,
) -> None:
    """The only host synchronisation of the loop, once per logging window: checks the window's
    steps are finite, logs them, then stops or saves when asked to."""
    step = pending[-1][0]
    history = [(s, _host_sums(x)) for s, x in pending]
    _check_finite(history, window_start + 1)
    window: dict[str, float] = {}
    for _, h in history:
        window = add_sums(window, h)
    elapsed = max(time.time() - window_time, 1e-9)
    metrics = {
        "loss": window["loss"] / max(window["count"], 1.0),
        "examples_per_second": window["count"] / elapsed,
        "epoch": step / session.steps_per_epoch,
    }
    session.logger.write(step, "train", metrics)
    if progress is not None:
        progress.update(len(pending))
        progress.set_postfix(
            loss=f"{metrics['loss']:.4f}", ex_s=f"{metrics['examples_per_second']:,.0f}"
        )
    if jax.process_count() > 1 and session.partitioner.any_process(session.stop.requested):
        save_and_stop(session.ckpt, state, meta, step, session.stop.received)
    every = session.config.checkpoint.every_steps
    at_epoch_end = step % session.steps_per_epoch == 0
    if every and step // every > window_start // every and not at_epoch_end:
        save_mid_epoch(session.ckpt, step, state, meta)
