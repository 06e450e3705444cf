"""Scoring a trained run on the host's inputs: the one jit-compiled, fixed-shape chunk loop.

Every device call has the scorer's fixed batch shape: the last chunk is padded with copies of
its first row and the padding's outputs are dropped, so a model compiles once however many
pairs or users a caller brings (`compilations()` says so).

- `CTRScorer`: (user, item) pairs -> P(positive), through the run's `FeatureEncoder`.
- `SequenceScorer`: histories -> next-item scores of every item [B, I], through the run's
  `predict` (whatever next-item model the run holds), optionally with given items excluded;
  exclusions are index lists, never a dense [users, items] array.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from shortrec_jax.data.dataset import Dataset
from shortrec_jax.data.sequences import eval_inputs
from shortrec_jax.training import step_cache
from shortrec_jax.training.run import TrainedRun


def _chunked(
    predict: Callable[[np.ndarray], np.ndarray], rows: int, chunk: int, out: np.ndarray
) -> np.ndarray:
    """Fills `out[:rows]` from `predict(idx)` over fixed-size chunks of row indices.

    Args:
      predict: [chunk] int64 row indices -> [chunk, ...] outputs of those rows.
      rows: how many rows.
      chunk: the fixed chunk size.
      out: [rows, ...] the output array.
    """
    for start in range(0, rows, chunk):
        stop = min(start + chunk, rows)
        idx = np.arange(start, start + chunk)
        idx[stop - start :] = start  # pad the last chunk with a real row: one shape
        out[start:stop] = predict(idx)[: stop - start]
    return out


def _own(predict: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """A new function object calling `predict`: jit keeps its compilation cache per function,
    so each scorer's `compilations()` counts its own shapes only (or those of the scorers
    that share it: equal models, one batch size)."""
    return lambda params, inputs: predict(params, inputs)


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1")


class CTRScorer:
    """P(positive) of (user, item) pairs by a CTR run (xDeepFM, Wide & Deep).

    Args:
      run: a CTR run.
      batch_size: pairs per device call, the one compiled shape.
    """

    def __init__(self, run: TrainedRun, batch_size: int) -> None:
        if run.encoder is None:
            raise ValueError(f"{run.workdir} is a {run.family} run; CTRScorer needs a CTR run")
        _check_batch_size(batch_size)
        self.run = run
        self.encoder = run.encoder
        self.batch_size = batch_size
        # A CTR run's predict is its model's sigmoid output, so scorers of equal models (Flax
        # modules compare by their config) with one batch size share the compiled function:
        # a new repeat's run does not compile again.
        self._predict = step_cache.shared(
            ("ctr_scorer", run.model, batch_size), lambda: jax.jit(_own(run.predict))
        )

    def compilations(self) -> int:
        """How many input shapes the model has been compiled for (1 after the first call)."""
        return self._predict._cache_size()

    def score_pairs(
        self,
        users: np.ndarray,
        items: np.ndarray,
        side: Dataset,
        cat_overrides: Mapping[int, int] | None = None,
    ) -> np.ndarray:
        """P(positive) of each pair.

        Args:
          users: [N] int user indices of `side` (-1 = unknown user).
          items: [N] int item indices of `side` (-1 = unknown item).
          side: the data set whose side information the indices refer to.
          cat_overrides: column of the batch's "cat" -> the global id every pair gets there
            (a request's demographics, already looked up in the encoder's vocabularies).

        Returns:
          [N] float32 in (0, 1).
        """
        users = np.asarray(users, np.int64)
        items = np.asarray(items, np.int64)
        if users.ndim != 1 or users.shape != items.shape:
            raise ValueError(
                f"users and items must be [N] of one length, got {users.shape} and {items.shape}"
            )

        def predict(idx: np.ndarray) -> np.ndarray:
            batch = self.encoder.encode_pairs(users[idx], items[idx], side)
            for column, value in (cat_overrides or {}).items():
                batch["cat"][:, column] = value
            return np.asarray(self._predict(self.run.params, batch))

        out = np.empty(items.size, np.float32)
        return _chunked(predict, items.size, self.batch_size, out)


class SequenceScorer:
    """Next-item scores of every item of a sequence run, after given histories.

    Args:
      run: a sequence run (its `predict` is the model's next-item scoring function).
      batch_size: histories per device call, the one compiled shape.
    """

    def __init__(self, run: TrainedRun, batch_size: int) -> None:
        if run.item_ids is None:
            raise ValueError(
                f"{run.workdir} is a {run.family} run; SequenceScorer needs a sequence run"
            )
        _check_batch_size(batch_size)
        self.run = run
        self.vocabulary = run.vocabulary
        self.max_len = run.max_len
        self.batch_size = batch_size
        self._scores = jax.jit(_own(run.predict))

    @property
    def num_items(self) -> int:
        return self.vocabulary.num_items

    def compilations(self) -> int:
        """How many input shapes the model has been compiled for (1 after the first call)."""
        return self._scores._cache_size()

    def inputs(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Model inputs asking for the next item after each history.

        Args:
          histories: B arrays of the run's item indices (0..I-1), oldest first; may be empty.

        Returns:
          [B, L] int32 sequence ids, left-padded, the mask token last.
        """
        ids = [self.vocabulary.ids(h) for h in histories]
        return eval_inputs(ids, self.max_len, self.vocabulary.mask_id)

    def score_inputs(
        self, inputs: np.ndarray, exclude: Sequence[np.ndarray] | None = None
    ) -> np.ndarray:
        """Next-item scores of every item after prepared inputs.

        Args:
          inputs: [B, L] int32, as `inputs` (or `SequenceData.eval_inputs`) builds them.
          exclude: B arrays of item indices to score -inf in their row (e.g. items seen).

        Returns:
          [B, I] float32, column i scoring the run's item index i.
        """
        inputs = np.asarray(inputs)
        if inputs.ndim != 2 or inputs.shape[1] != self.max_len:
            raise ValueError(f"inputs must be [B, {self.max_len}], got shape {inputs.shape}")

        def predict(idx: np.ndarray) -> np.ndarray:
            return np.asarray(self._scores(self.run.params, inputs[idx]))

        out = np.empty((inputs.shape[0], self.num_items), np.float32)
        _chunked(predict, inputs.shape[0], self.batch_size, out)
        if exclude is not None:
            if len(exclude) != inputs.shape[0]:
                raise ValueError(f"exclude has {len(exclude)} rows, inputs {inputs.shape[0]}")
            lengths = [len(e) for e in exclude]
            rows = np.repeat(np.arange(len(exclude)), lengths)
            cols = np.concatenate([np.asarray(e, np.int64) for e in exclude] or [[]])
            out[rows, cols.astype(np.int64)] = -np.inf
        return out

    def score(
        self, histories: Sequence[np.ndarray], exclude: Sequence[np.ndarray] | None = None
    ) -> np.ndarray:
        """[B, I] float32 next-item scores after B histories of item indices (see
        `inputs` and `score_inputs`)."""
        return self.score_inputs(self.inputs(histories), exclude)
