"""Checkpoints of the training loop: which config changes a resume accepts, the state a run
starts from, and the two kinds of save (end of epoch, mid-epoch).

Resume order at start-up: restore the newest intact checkpoint of the run directory if there
is one (corrupt newer ones are moved aside with a warning), otherwise initialise from the
seed (see `checkpoint.py`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
from ml_collections import ConfigDict

from shortrec_jax.config_files import dotted_fields
from shortrec_jax.training.checkpoint import Checkpointer, config_to_json
from shortrec_jax.training.guards import TrainingInterrupted
from shortrec_jax.training.parallel import Partitioner
from shortrec_jax.training.steps import TrainState

PyTree = Any

# Fields that may change when a run is resumed; any other difference means another experiment.
RESUMABLE_CHANGES = (
    "train.num_epochs",
    "train.early_stopping_patience",
    "train.log_every_steps",
    "train.max_steps_in_flight",
    "train.prefetch",
    "eval",
    "checkpoint.async_save",
    "log",
    # A checkpoint restores onto any mesh. (xDeepFM's tables are padded to a multiple of
    # the model axis size: a change of that padding fails the restore, naming the shapes.)
    "parallel",
)


def check_config_matches(config: ConfigDict, workdir: Path) -> None:
    """Refuses to resume a run directory with a config of another experiment."""
    path = workdir / "config.json"
    if not path.exists():
        return
    old = dotted_fields(json.loads(path.read_text()))
    new = dotted_fields(config_to_json(config))
    changed = sorted(
        k
        for k in old.keys() | new.keys()
        if old.get(k) != new.get(k)
        and not any(k == f or k.startswith(f + ".") for f in RESUMABLE_CHANGES)
    )
    if changed:
        shown = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed[:5])
        raise ValueError(
            f"{workdir} holds a run with another config ({shown}); use a new --workdir "
            "or the same config to resume"
        )


def restore_or_init(
    ckpt: Checkpointer,
    partitioner: Partitioner,
    abstract_state: PyTree,
    init_fn: Callable[[jax.Array], TrainState],
    init_rng: jax.Array,
) -> tuple[TrainState, dict[str, Any]]:
    """The state and loop metadata to start from: the newest intact checkpoint's (corrupt
    newer ones are moved aside with a warning), or fresh ones.

    Returns:
      (state placed on the devices, meta: {"epoch", "best", "best_epoch", "bad_epochs"}).
    """
    meta: dict[str, Any] = {"epoch": 0, "best": None, "best_epoch": None, "bad_epochs": 0}
    restored = ckpt.restore_intact(abstract_state, set_aside=True)
    if restored is not None:
        return restored[1], restored[2]
    return partitioner.init_state(init_fn, init_rng), meta


def save_epoch(
    ckpt: Checkpointer,
    step: int,
    state: TrainState,
    meta: dict[str, Any],
    valid: dict[str, float],
) -> None:
    """Saves the state at the end of an epoch with its validation metrics (the best is kept)."""
    ckpt.save(step, state, dict(meta), metrics=valid)


def save_mid_epoch(ckpt: Checkpointer, step: int, state: TrainState, meta: dict[str, Any]) -> None:
    """Saves the state inside an epoch, without metrics; resuming skips the epoch's done steps."""
    ckpt.save(step, state, {**meta, "mid_epoch": True})


def save_and_stop(
    ckpt: Checkpointer, state: TrainState, meta: dict[str, Any], step: int, signal_name: str | None
) -> None:
    """Saves the state reached and stops the run (SIGINT/SIGTERM)."""
    if step not in ckpt.all_steps():
        save_mid_epoch(ckpt, step, state, meta)
    ckpt.wait()
    raise TrainingInterrupted(
        f"stopped by {signal_name} at step {step}, checkpoint saved; run the same command to "
        "resume",
        signal_name or "SIGTERM",
    )
