"""The deep models as `Method`s: trained by the project's trainer, scored on device.

`CTRMethod` wraps xDeepFM and Wide & Deep, `BERT4RecMethod` wraps BERT4Rec. `fit` trains
with `train_and_evaluate` on the split it is given (so evaluate.py compares every method on
the same splits and seeds), then scores with that run's encoders; a finished run directory
can be scored without training (`from_run`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np
from ml_collections import ConfigDict

from shortrec_jax.data.dataset import Dataset
from shortrec_jax.data.sequences import SequenceData
from shortrec_jax.data.splits import Split, concat, leave_one_out, random_split
from shortrec_jax.interface import Method
from shortrec_jax.io import run_directory
from shortrec_jax.models.transformer import next_item_scores
from shortrec_jax.training.restore import TrainedRun, load_run

PyTree = Any


def validation_split(train: Dataset, valid: Dataset | None, fraction: float, seed: int) -> Split:
    """The (train, valid) parts a trainer needs: `valid`, or a seeded share of `train`.

    Protocols such as the study's 80/20 split have no validation part; early stopping and
    the choice of the best checkpoint then use `fraction` of the training interactions, which
    the model does not train on.
    """
    if valid is not None:
        return Split(train=train, valid=valid, test=None, protocol="given")
    inner = random_split(train, (1.0 - fraction, fraction), seed=seed)
    return Split(train=inner.train, valid=inner.test, test=None, protocol=inner.protocol)


class CTRMethod(Method):
    """xDeepFM or Wide & Deep as a recommendation method; scores are P(rating >= threshold).

    Args:
      train_config: the training config (e.g. `configs/xdeepfm_ml100k.get_config()`); its
        data section gives the features and label, not the split.
      workdir: where the run directory goes; when None, a temporary folder removed once `fit`
        has loaded the trained run.
      valid_fraction: share of the training part held out for validation when `fit` gets no
        validation part.
      score_batch: pairs per scoring call; every call has this shape, so scoring compiles once.
    """

    outputs_probabilities = True

    def __init__(
        self,
        train_config: ConfigDict,
        workdir: str | Path | None = None,
        *,
        valid_fraction: float = 0.1,
        score_batch: int = 16_384,
    ) -> None:
        self.name = train_config.model.name
        self.config = train_config
        self.workdir = Path(workdir) if workdir is not None else None
        self.valid_fraction = valid_fraction
        self.score_batch = score_batch
        self.run: TrainedRun | None = None
        self.side: Dataset | None = None
        self.results: dict[str, Any] = {}

    @classmethod
    def from_run(cls, workdir: str | Path, side: Dataset, **options: Any) -> CTRMethod:
        """A method from a finished run directory (no training); `side` supplies the user and
        item features of the indices it will be asked to score."""
        run = load_run(workdir)
        method = cls(run.config, workdir, **options)
        method._attach(run, side)
        return method

    def fit(self, train: Dataset, valid: Dataset | None = None) -> CTRMethod:
        from shortrec_jax.training.loop import train_and_evaluate

        split = validation_split(train, valid, self.valid_fraction, self.config.seed)
        with run_directory(self.workdir, prefix=f"{self.name}-") as workdir:
            self.results = train_and_evaluate(self.config, workdir, split=split)
            self._attach(load_run(workdir), train)
        return self

    def _attach(self, run: TrainedRun, side: Dataset) -> None:
        self.run, self.side = run, side
        model = run.task.model
        self._predict = jax.jit(
            lambda params, batch: jax.nn.sigmoid(
                model.apply({"params": params}, batch, train=False)
            )
        )

    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """P(positive) of each (user, candidate) pair.

        Args:
          users: [B] int user indices; items: [B, C] int item indices (-1 = unknown).

        Returns:
          [B, C] float32.
        """
        if self.run is None or self.side is None:
            raise RuntimeError(f"{self.name}: call fit() (or from_run) before scoring")
        users = np.asarray(users)
        items = np.asarray(items)
        flat_users = np.repeat(users, items.shape[1])
        flat_items = items.reshape(-1)
        out = np.empty(flat_items.shape[0], dtype=np.float32)
        encoder = self.run.task.encoder
        n, chunk = flat_items.shape[0], self.score_batch
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            idx = np.arange(start, start + chunk)
            idx[stop - start :] = start  # pad the last chunk: one shape, one compilation
            batch = encoder.encode_pairs(flat_users[idx], flat_items[idx], self.side)
            out[start:stop] = np.asarray(self._predict(self.run.params, batch))[: stop - start]
        return out.reshape(items.shape)

    def score_all(self, users: np.ndarray) -> np.ndarray:
        """[B, I] scores of every item for each of `users` ([B])."""
        assert self.side is not None
        users = np.asarray(users)
        items = np.broadcast_to(np.arange(self.side.num_items), (users.size, self.side.num_items))
        return self.score(users, items)


class BERT4RecMethod(Method):
    """BERT4Rec or SASRec as a recommendation method: next-item scores after each history.

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
        self.name = train_config.model.name
        self.config = train_config
        self.workdir = Path(workdir) if workdir is not None else None
        self.score_batch = score_batch
        self.run: TrainedRun | None = None
        self.history: SequenceData | None = None
        self.results: dict[str, Any] = {}

    @classmethod
    def from_run(cls, workdir: str | Path, history: Dataset, **options: Any) -> BERT4RecMethod:
        """A method from a finished run directory; `history` gives each user's sequence."""
        run = load_run(workdir)
        method = cls(run.config, workdir, **options)
        method._attach(run, history)
        return method

    def fit(self, train: Dataset, valid: Dataset | None = None) -> BERT4RecMethod:
        from shortrec_jax.training.loop import train_and_evaluate

        if valid is None:
            inner = leave_one_out(train, with_valid=False)
            split = Split(train=inner.train, valid=inner.test, test=None, protocol=inner.protocol)
        else:
            split = Split(train=train, valid=valid, test=None, protocol="given")
        with run_directory(self.workdir, prefix=f"{self.name}-") as workdir:
            self.results = train_and_evaluate(self.config, workdir, split=split)
            run = load_run(workdir)
        seen = train if valid is None else concat([train, valid])
        self._attach(run, seen)
        return self

    def _attach(self, run: TrainedRun, history: Dataset) -> None:
        self.run = run
        self.history = SequenceData.from_dataset(history)
        model = run.task.model
        self._scores = jax.jit(lambda params, inputs: next_item_scores(model, params, inputs))

    def score_all(self, users: np.ndarray) -> np.ndarray:
        """[B, I] next-item scores (logits) of every item for each of `users` ([B])."""
        if self.run is None or self.history is None:
            raise RuntimeError(f"{self.name}: call fit() (or from_run) before scoring")
        users = np.asarray(users)
        max_len = self.run.config.data.max_len
        out = np.empty((users.size, self.run.task.num_items), dtype=np.float32)
        chunk = self.score_batch
        for start in range(0, users.size, chunk):
            stop = min(start + chunk, users.size)
            rows = np.arange(start, start + chunk)
            rows[stop - start :] = start  # pad the last chunk: one shape, one compilation
            inputs = self.history.eval_inputs(users[rows], max_len)
            out[start:stop] = np.asarray(self._scores(self.run.params, inputs))[: stop - start]
        return out
