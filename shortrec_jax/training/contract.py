"""What the training loop's parts share: the `Task` a model family provides, and the `Session`.

A `Task` (see `tasks.py`) is everything that differs between model families: data, loss and
validation metrics. A `Session` is what one training run works with once it has started:
the task, the devices, the compiled steps, the checkpointer and the logger.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import jax
import numpy as np
from ml_collections import ConfigDict

from shortrec_jax.training.checkpoint import Checkpointer
from shortrec_jax.training.guards import StopSignals
from shortrec_jax.training.logger import MetricLogger
from shortrec_jax.training.parallel import Partitioner

PyTree = Any


class Task(Protocol):
    """What a model family provides to the loop. Batches are host NumPy dicts of fixed shape.

    Optionally, a `functions` attribute: a hashable value holding the task's pure
    `init_params`, `loss_sums` and `predict` and comparing equal exactly when they compute the
    same (`CTRTask.functions`); runs of one process with equal ones then share their compiled
    steps (`step_cache.py`). A task without it gets fresh steps every run.
    """

    #: the validation metric that picks the best checkpoint and drives early stopping.
    best_metric: str
    #: "max" or "min".
    best_mode: str
    #: parameter paths split by rows over the "model" mesh axis (see `Partitioner`).
    sharded_tables: tuple[str, ...]

    @property
    def parts(self) -> tuple[str, ...]:
        """The data parts prepared: "train", "valid" and, when there is one, "test"."""

    def prepare(self, workdir: Path) -> None:
        """Loads and splits the data, fits (or restores from `workdir`) and saves encoders."""

    def restore(self, workdir: Path) -> None:
        """Rebuilds encoders and model of a finished run in `workdir`, without data."""

    def init_params(self, rng: jax.Array) -> PyTree:
        """Initial model parameters."""

    def loss_sums(
        self, params: PyTree, batch: PyTree, rng: jax.Array, train: bool
    ) -> dict[str, jax.Array]:
        """Loss sum and weight count (and other sums) over one device's batch shard."""

    def steps_per_epoch(self, batch_size: int) -> int:
        """Training steps in one epoch at this global batch size."""

    def train_batches(
        self, epoch: int, batch_size: int, num_shards: int, process_rows: slice | None = None
    ) -> Iterator[dict[str, np.ndarray]]:
        """Global batches of `batch_size` for `epoch` (shuffled from the seed and epoch), cut
        to this process's `process_rows`."""

    def predict(self, params: PyTree, batch: PyTree) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Per-example outputs [b, ...] and metric sums over one device's batch shard."""

    def eval_batches(
        self, part: str, batch_size: int, num_shards: int, process_rows: slice | None = None
    ) -> Iterator[dict[str, np.ndarray]]:
        """Global batches of the "valid" or "test" part, padded with weight 0, cut to this
        process's `process_rows`."""

    def eval_metrics(
        self, part: str, per_example: np.ndarray, sums: dict[str, float]
    ) -> dict[str, float]:
        """Final metrics of a part from all its per-example outputs (padding removed)."""


@dataclasses.dataclass(frozen=True)
class Session:
    """One started training run: built once by the loop, read by the epoch and validation.

    Attributes:
      config: the run's config.
      task: the model family, prepared (data loaded, encoders fitted).
      partitioner: the run's devices.
      ckpt: the run directory's checkpoints.
      logger: the run's metric log.
      stop: SIGINT/SIGTERM flags.
      train_step: `Partitioner.compile_train_step` of the task's loss.
      eval_step: `Partitioner.compile_eval_step` of the task's predict.
      train_rng: the key every training step folds its step number into.
      abstract_state: shapes and shardings of the train state (what a restore fills in).
      steps_per_epoch: training steps in one epoch.
    """

    config: ConfigDict
    task: Task
    partitioner: Partitioner
    ckpt: Checkpointer
    logger: MetricLogger
    stop: StopSignals
    train_step: Any
    eval_step: Any
    train_rng: jax.Array
    abstract_state: PyTree
    steps_per_epoch: int
