"""The deep models as `Method`s: trained by the project's trainer, scored on device.

`CTRMethod` wraps xDeepFM and Wide & Deep, `SequenceMethod` wraps the next-item models
(BERT4Rec). `fit` trains with `train_run` on the split it is given (so evaluate.py compares
every method on the same splits and seeds), then scores through that run's scorer; a finished
run directory can be scored without training (`from_run`).
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any

import numpy as np
from ml_collections import ConfigDict

from shortrec_jax.data.dataset import Dataset
from shortrec_jax.data.sequences import SequenceData
from shortrec_jax.data.splits import concat
from shortrec_jax.interface import Method
from shortrec_jax.training.run import TrainedRun, load_run, train_run, training_split
from shortrec_jax.training.scorers import CTRScorer, SequenceScorer


class _RunMethod(Method):
    """A deep model as a method: trained by `train_run` on what `fit` is given, then scored
    through its run's scorer (subclasses attach the scorer and say how they score)."""

    def __init__(self, train_config: ConfigDict, workdir: str | Path | None) -> None:
        self.name = train_config.model.name
        self.config = train_config
        self.workdir = Path(workdir) if workdir is not None else None
        self.run: TrainedRun | None = None
        self.results: dict[str, Any] = {}

    @classmethod
    def from_run(cls, workdir: str | Path, data: Dataset, **options: Any) -> _RunMethod:
        """A method from a finished run directory (no training); `data` supplies what scoring
        reads (a CTR model's user and item features, a sequence model's histories)."""
        run = load_run(workdir)
        method = cls(run.config, workdir, **options)
        method._attach(run, data)
        return method

    def fit(self, train: Dataset, valid: Dataset | None = None) -> _RunMethod:
        run, self.results = train_run(
            self.config, self.workdir, train, valid, **self._train_options()
        )
        self._attach(run, train, valid)
        return self

    def _train_options(self) -> dict[str, Any]:
        return {}

    @abc.abstractmethod
    def _attach(self, run: TrainedRun, train: Dataset, valid: Dataset | None = None) -> None:
        """Builds the scorer of `run` and keeps what scoring reads from the given parts."""


class CTRMethod(_RunMethod):
    """xDeepFM or Wide & Deep as a recommendation method; scores are P(rating >= threshold).

    Args:
      train_config: the training config (e.g. `configs/xdeepfm_ml100k.get_config()`); its
        data section gives the features and label, not the split.
      workdir: where the run directory goes; when None, a temporary folder removed once `fit`
        has loaded the trained run.
      valid_fraction: share of the training part held out for validation when `fit` gets no
        validation part.
      score_batch: pairs per scoring call; every call has this shape, so scoring compiles once.
      refit: when `fit` gets no validation part: after early stopping on the held-out share,
        train again on the whole training part for the epochs chosen there (the best epoch),
        and score with that model. Its run directory is `workdir` + "-refit". Without it,
        the model scored is the one trained on the rest of the training part.
    """

    outputs_probabilities = True

    def __init__(
        self,
        train_config: ConfigDict,
        workdir: str | Path | None = None,
        *,
        valid_fraction: float = 0.1,
        score_batch: int = 16_384,
        refit: bool = False,
    ) -> None:
        super().__init__(train_config, workdir)
        self.valid_fraction = valid_fraction
        self.score_batch = score_batch
        self.refit = refit
        self.scorer: CTRScorer | None = None
        self.side: Dataset | None = None

    def _train_options(self) -> dict[str, Any]:
        return {"valid_fraction": self.valid_fraction}

    def fit(self, train: Dataset, valid: Dataset | None = None) -> CTRMethod:
        run, self.results = train_run(
            self.config, self.workdir, train, valid, valid_fraction=self.valid_fraction
        )
        if self.refit and valid is None:
            run = self._refit(train)
        self._attach(run, train, valid)
        return self

    def _refit(self, train: Dataset) -> TrainedRun:
        """Trains again on all of `train` for the chosen epochs; `results` then holds the
        refit's results, with the selection run's under "selection"."""
        epochs = int(self.results["best_epoch"])
        config = ConfigDict(self.config.to_dict())
        config.train.num_epochs = epochs
        config.train.early_stopping_patience = 0
        # The loop validates every epoch; the held-out share is now training data, so its
        # metrics say nothing, and the latest checkpoint (the last epoch) is the one loaded.
        slice_ = training_split(
            "ctr", train, None, valid_fraction=self.valid_fraction, seed=config.seed
        ).valid
        workdir = (
            None if self.workdir is None else self.workdir.with_name(self.workdir.name + "-refit")
        )
        run, results = train_run(config, workdir, train, slice_, which="latest")
        self.results = {**results, "selection": self.results, "refit_epochs": epochs}
        return run

    def _attach(self, run: TrainedRun, train: Dataset, valid: Dataset | None = None) -> None:
        # The features of the indices it scores come from the training part's data set.
        self.run, self.side = run, train
        self.scorer = CTRScorer(run, self.score_batch)

    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """P(positive) of each (user, candidate) pair.

        Args:
          users: [B] int user indices; items: [B, C] int item indices (-1 = unknown).

        Returns:
          [B, C] float32.
        """
        if self.scorer is None or self.side is None:
            raise RuntimeError(f"{self.name}: call fit() (or from_run) before scoring")
        users = np.asarray(users, np.int64)
        items = np.asarray(items, np.int64)
        flat_users = np.repeat(users, items.shape[1])
        flat_items = items.reshape(-1)
        # Each distinct pair is scored once: the protocols' candidate matrices are padded to
        # the longest row with one repeated item (the paper protocol's [U, C] is about 7x
        # its real pairs), and the model's forward pass is what costs.
        keys = (flat_users + 1) * (self.side.num_items + 1) + (flat_items + 1)
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        out = self.scorer.score_pairs(flat_users[first], flat_items[first], self.side)
        return out[inverse.reshape(-1)].reshape(items.shape)

    def score_all(self, users: np.ndarray) -> np.ndarray:
        """[B, I] scores of every item for each of `users` ([B])."""
        assert self.side is not None
        users = np.asarray(users)
        items = np.broadcast_to(np.arange(self.side.num_items), (users.size, self.side.num_items))
        return self.score(users, items)


class SequenceMethod(_RunMethod):
    """A next-item model (BERT4Rec or SASRec) as a recommendation method: its scores after each
    user's history.

    `fit(train, valid)` trains on `train` (validating on `valid`, or, without one, on each
    user's last training item, held out by time); the history it scores from is everything
    `fit` saw, `train` and `valid`, in time order.

    Args:
      train_config: the training config (e.g. `configs/bert4rec_ml100k.get_config()`).
      workdir: where the run directory goes; when None, a temporary folder removed once `fit`
        has loaded the trained run.
      score_batch: users per scoring call (one shape, one compilation).
    """

    def __init__(
        self, train_config: ConfigDict, workdir: str | Path | None = None, *, score_batch: int = 256
    ) -> None:
        super().__init__(train_config, workdir)
        self.score_batch = score_batch
        self.scorer: SequenceScorer | None = None
        self.history: SequenceData | None = None

    def _attach(self, run: TrainedRun, train: Dataset, valid: Dataset | None = None) -> None:
        self.run = run
        self.scorer = SequenceScorer(run, self.score_batch)
        # The histories it scores from: everything it was given, in time order.
        self.history = SequenceData.from_dataset(train if valid is None else concat([train, valid]))

    def score_all(self, users: np.ndarray) -> np.ndarray:
        """[B, I] next-item scores (logits) of every item for each of `users` ([B])."""
        if self.scorer is None or self.history is None:
            raise RuntimeError(f"{self.name}: call fit() (or from_run) before scoring")
        inputs = self.history.eval_inputs(np.asarray(users), self.scorer.max_len)
        return self.scorer.score_inputs(inputs)
