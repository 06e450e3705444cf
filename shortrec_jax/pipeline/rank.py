"""Ranking: xDeepFM's P(like) of every candidate, with the user's and the items' features.

Every device call has the fixed shape [batch_size] (the candidate list is padded to a
multiple of it), so the model compiles once, at start-up, and no request triggers a
recompile however many candidates its recall stage produced (`compilations()` says so).

Users and items the model never saw in training are encoded by the run's `FeatureEncoder`
with its reserved unknown ids: an unknown item keeps its content features (genres, year), an
unknown user keeps whatever demographics the request gives (`demographic_fields`), which
are written into the user's columns of the batch with the encoder's vocabularies, so a new
user with age, gender and occupation is ranked like users with that profile.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from shortrec_jax.data.dataset import Dataset
from shortrec_jax.data.fields import USER_ID
from shortrec_jax.training.run import TrainedRun
from shortrec_jax.training.scorers import CTRScorer


class UnknownDemographicError(ValueError):
    """A demographic field the ranking model does not use (the message names the known ones)."""


class Ranker:
    """Scores (user, candidate) pairs with a trained xDeepFM or Wide & Deep run.

    Args:
      run: the CTR run (`load_run`).
      side: the data set whose user and item indices are scored (its side information).
      batch_size: pairs per device call, the one compiled shape.
    """

    def __init__(self, run: TrainedRun, side: Dataset, batch_size: int) -> None:
        self.run = run
        self.scorer = CTRScorer(run, batch_size)
        self.side = side
        encoder = self.scorer.encoder
        cat_fields = encoder.spec.cat_fields
        # Demographic column -> (its column in batch["cat"], first id, sorted vocabulary).
        self._user_columns: dict[str, tuple[int, int, np.ndarray]] = {}
        for spec in encoder.fields:
            user_side = spec.side == "user" or (
                spec.side == "" and spec.source in side.user_features
            )
            if spec.kind == "categorical" and spec.source != USER_ID and user_side:
                self._user_columns[spec.source] = (
                    cat_fields.index(spec.name),
                    encoder.offset(spec.name),
                    encoder.vocabulary(spec.name),
                )

    @property
    def demographic_fields(self) -> tuple[str, ...]:
        """The user columns a request's demographics may set (e.g. age, gender, occupation)."""
        return tuple(self._user_columns)

    def compilations(self) -> int:
        """How many input shapes the model has been compiled for (1 after the first call)."""
        return self.scorer.compilations()

    def check_demographics(self, demographics: Mapping[str, object]) -> None:
        """Raises UnknownDemographicError naming fields the model does not use."""
        unknown = sorted(set(demographics) - set(self._user_columns))
        if unknown:
            raise UnknownDemographicError(
                f"unknown demographic fields {unknown}; the ranking model uses "
                f"{sorted(self._user_columns)}"
            )

    def score(
        self, user: int, items: np.ndarray, demographics: Mapping[str, object] | None = None
    ) -> np.ndarray:
        """P(like) of each candidate for one user.

        Args:
          user: the user's index in `side`, or -1 for a user the data set does not know.
          items: [C] int item indices of `side` (-1 = an unknown item: content-free).
          demographics: user column -> value, replacing the user's stored values (for an
            unknown user: the only user features it has); values are matched as strings, and
            one training never saw gets the reserved unknown id.

        Returns:
          [C] float32 in (0, 1).
        """
        items = np.asarray(items, np.int64)
        if items.ndim != 1:
            raise ValueError(f"items must be [C], got shape {items.shape}")
        overrides = self._demographic_ids(demographics or {})
        users = np.full(items.size, user, np.int64)
        return self.scorer.score_pairs(users, items, self.side, cat_overrides=overrides)

    def _demographic_ids(self, demographics: Mapping[str, object]) -> dict[int, int]:
        """{column of batch["cat"]: global id} of the given demographics."""
        self.check_demographics(demographics)
        ids = {}
        for name, value in demographics.items():
            column, offset, vocab = self._user_columns[name]
            text = str(value)
            pos = int(np.searchsorted(vocab, text))
            known = pos < vocab.size and vocab[pos] == text
            ids[column] = offset + (pos + 1 if known else 0)  # local id 0: unseen value
        return ids
