"""Loading a finished run directory: its config, encoders, model and trained parameters.

A run directory is enough to score, evaluate and serve (DESIGN.md): `load_run` needs nothing
but the directory, and no data set is read.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import jax
from ml_collections import ConfigDict

from shortrec_jax.training.checkpoint import Checkpointer, abstract_like
from shortrec_jax.training.optim import make_optimizer
from shortrec_jax.training.parallel import Partitioner
from shortrec_jax.training.steps import TrainState

PyTree = Any


@dataclasses.dataclass
class TrainedRun:
    """A trained model ready to score.

    Attributes:
      workdir: the run directory.
      config: the run's config.
      task: the model family's task, with encoders and model rebuilt (no data loaded).
      params: the parameters of the chosen checkpoint, on the first device.
      step: the checkpoint's step.
    """

    workdir: Path
    config: ConfigDict
    task: Any
    params: PyTree
    step: int


def load_run(workdir: str | Path, *, which: str = "best") -> TrainedRun:
    """Restores the best (or latest) intact checkpoint of a run directory.

    A checkpoint that cannot be read, or whose arrays or meta no longer match the checksums
    recorded when it was saved, is skipped with a one-line warning; "best" then tries the
    next best by the metric, then the newest intact one.

    Args:
      workdir: a directory written by `train_and_evaluate`.
      which: "best" (by the validation metric) or "latest".

    Raises:
      FileNotFoundError: the directory holds no finished run (naming what is missing).
      CheckpointError: it has checkpoints but none is intact.
    """
    from shortrec_jax.training.tasks import make_task

    workdir = Path(workdir)
    config_path = workdir / "config.json"
    if not config_path.exists():
        raise FileNotFoundError(f"{workdir} is not a run directory: no config.json")
    if which not in ("best", "latest"):
        raise ValueError(f"which={which!r} must be 'best' or 'latest'")
    config = ConfigDict(json.loads(config_path.read_text()))
    task = make_task(config)
    task.restore(workdir)
    ckpt = Checkpointer(
        workdir, keep=config.checkpoint.keep, best_metric=task.best_metric, best_mode=task.best_mode
    )
    try:
        newest_first = sorted(ckpt.all_steps(), reverse=True)
        if not newest_first:
            raise FileNotFoundError(f"{workdir} has no complete checkpoint")
        steps = newest_first
        if which == "best":
            scored = ckpt.steps_by_metric()
            steps = scored + [s for s in newest_first if s not in scored]
        # The optimiser only shapes the restore target; its schedule length does not matter.
        tx = make_optimizer(config.train, total_steps=1)
        part = Partitioner(jax.devices()[:1])
        abstract = abstract_like(
            jax.eval_shape(lambda k: TrainState.create(task.init_params(k), tx), jax.random.key(0)),
            part.replicated,
        )
        # A corrupt checkpoint is skipped with a warning (and left where it is): the next
        # best by the metric is tried, then the newest intact one.
        step, state, _ = ckpt.restore_intact(abstract, steps=steps)
    finally:
        ckpt.close()
    return TrainedRun(workdir=workdir, config=config, task=task, params=state.params, step=step)
