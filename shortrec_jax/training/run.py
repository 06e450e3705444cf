"""A finished run as one typed object: its model, parameters and what its inputs need.

A run directory is enough to score, evaluate and serve (DESIGN.md): `load_run` needs nothing
but the directory, and no data set is read. Everything outside `training/` uses a model
through a `TrainedRun` and its scorers (`training/scorers.py`), never through a task:

- a CTR run (xDeepFM, Wide & Deep) carries its `FeatureEncoder`, and its `predict` maps an
  encoded batch to P(positive) [N];
- a sequence run (BERT4Rec and any next-item model) carries the raw ids of the items it was
  trained on and their `ItemVocabulary` (pad 0, items 1..I, mask I + 1), and its `predict`
  maps [B, L] histories ending with the mask token to next-item scores [B, I].

`train_run` trains a config on given (train, valid) parts and returns the finished run: how
the evaluation methods and the pipeline method fit a deep model on a repeat's split.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np
from ml_collections import ConfigDict

from shortrec_jax.data import Dataset
from shortrec_jax.data.features import FeatureEncoder
from shortrec_jax.data.side_files import load_configured
from shortrec_jax.data.splits import Split, leave_one_out, random_split
from shortrec_jax.io import run_directory
from shortrec_jax.models import get_model
from shortrec_jax.training.checkpoint import Checkpointer, abstract_like
from shortrec_jax.training.loop import train_and_evaluate
from shortrec_jax.training.optim import make_optimizer
from shortrec_jax.training.parallel import Partitioner
from shortrec_jax.training.steps import TrainState
from shortrec_jax.training.tasks import make_task
from shortrec_jax.vocabulary import ItemVocabulary

PyTree = Any


@dataclasses.dataclass(frozen=True)
class TrainedRun:
    """A trained model ready to score.

    Attributes:
      workdir: the run directory.
      config: the run's config.
      family: "ctr" (scores encoded (user, item) pairs) or "sequence" (next-item scores).
      model: the Flax module.
      params: the parameters of the chosen checkpoint, on the first device.
      step: the checkpoint's step.
      predict: `predict(params, inputs)`, pure and jit-able: for "ctr" a batch of
        `FeatureEncoder.encode_pairs` -> [N] float32 probabilities; for "sequence" [B, L]
        int32 inputs (`ItemVocabulary` ids, mask token last) -> [B, I] float32 scores.
      encoder: the CTR run's feature encoder (None for a sequence run).
      item_ids: [I] raw ids of a sequence run's items, index order (None for a CTR run).
    """

    workdir: Path
    config: ConfigDict
    family: str
    model: Any
    params: PyTree
    step: int
    predict: Callable[[PyTree, Any], jax.Array]
    encoder: FeatureEncoder | None = None
    item_ids: np.ndarray | None = None

    @classmethod
    def from_task(
        cls, workdir: Path, config: ConfigDict, task: Any, params: PyTree, step: int
    ) -> TrainedRun:
        """The run of a prepared or restored task with these parameters."""
        if task.family == "ctr":
            extra = {"encoder": task.encoder}
            predict = task.functions.probabilities
        else:
            extra = {"item_ids": task.item_ids}
            predict = task.next_item_scores
        return cls(
            workdir=Path(workdir),
            config=config,
            family=task.family,
            model=task.model,
            params=params,
            step=step,
            predict=predict,
            **extra,
        )

    @property
    def vocabulary(self) -> ItemVocabulary:
        """The sequence ids of a sequence run's items."""
        if self.item_ids is None:
            raise ValueError(f"{self.workdir} is a {self.family} run, not a sequence run")
        return ItemVocabulary(int(self.item_ids.size))

    @property
    def max_len(self) -> int:
        """L, the input length of a sequence run."""
        return int(self.config.data.max_len)

    def source_data(self) -> Dataset:
        """Every interaction of the data source the run was configured with (not one split),
        with the side files the config names."""
        return load_configured(self.config.data)


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
        ema = config.train.get("ema_decay", 0.0) > 0
        part = Partitioner(jax.devices()[:1])
        abstract = abstract_like(
            jax.eval_shape(
                lambda k: TrainState.create(task.init_params(k), tx, ema=ema), jax.random.key(0)
            ),
            part.replicated,
        )
        # A corrupt checkpoint is skipped with a warning (and left where it is): the next
        # best by the metric is tried, then the newest intact one.
        step, state, _ = ckpt.restore_intact(abstract, steps=steps)
    finally:
        ckpt.close()
    return TrainedRun.from_task(workdir, config, task, state.eval_params, step)


def untrained_run(workdir: str | Path, config: ConfigDict, seed: int = 0) -> TrainedRun:
    """A run with initial parameters, from a directory that holds only the encoders.

    For tests and demonstrations of the scoring mechanics, which need no training.
    """
    task = make_task(config)
    task.restore(Path(workdir))
    params = task.init_params(jax.random.key(seed))
    return TrainedRun.from_task(Path(workdir), config, task, params, step=0)


def training_split(
    family: str, train: Dataset, valid: Dataset | None, *, valid_fraction: float, seed: int
) -> Split:
    """The (train, valid) parts a trainer needs from what a method's `fit` was given.

    With a `valid` part, it is used as is. Without one (the study's 80/20 split has none),
    early stopping and the best checkpoint use a held-out share of `train` the model does
    not train on: a seeded `valid_fraction` of the interactions for a CTR model, each user's
    last training item (by time) for a sequence model.
    """
    if valid is not None:
        return Split(train=train, valid=valid, test=None, protocol="given")
    if family == "ctr":
        inner = random_split(train, (1.0 - valid_fraction, valid_fraction), seed=seed)
    else:
        inner = leave_one_out(train, with_valid=False)
    return Split(train=inner.train, valid=inner.test, test=None, protocol=inner.protocol)


def train_run(
    config: ConfigDict,
    workdir: str | Path | None,
    train: Dataset,
    valid: Dataset | None = None,
    *,
    valid_fraction: float = 0.1,
    which: str = "best",
) -> tuple[TrainedRun, dict[str, Any]]:
    """Trains `config` on given parts and loads its best (or latest) checkpoint.

    Args:
      config: a training config; its data section gives features and labels, not the split.
      workdir: the run directory; when None, a temporary folder removed once the trained run
        is loaded (its parameters and encoders are then in memory).
      train, valid: the parts (see `training_split` for a missing `valid`).
      valid_fraction: share of `train` held out for validation of a CTR model without `valid`.
      which: the checkpoint loaded, "best" by the validation metric or "latest" (a refit,
        whose validation part is inside its training data).

    Returns:
      (the finished run, the results of `train_and_evaluate`).
    """
    family = get_model(config.model.name).family
    split = training_split(family, train, valid, valid_fraction=valid_fraction, seed=config.seed)
    with run_directory(workdir, prefix=f"{config.model.name}-") as directory:
        results = train_and_evaluate(config, directory, split=split)
        return load_run(directory, which=which), results
