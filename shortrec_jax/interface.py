"""The small contract every recommendation method meets, deep or traditional.

`evaluate.py` and the pipeline treat all methods alike through it: fit on the training part,
score given (user, candidate) pairs, rank the full catalogue with already-seen items excluded.
Users and items are the contiguous indices of `Dataset` (0..num_users-1, 0..num_items-1).
"""

from __future__ import annotations

import abc
from typing import ClassVar

import numpy as np

from shortrec_jax.data.dataset import Dataset


def seen_matrix_rows(train: Dataset, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (row, item) pairs of training interactions for a batch of users.

    Args:
      train: the training interactions.
      users: [B] int user indices.

    Returns:
      (rows [M] int64 positions in `users`, items [M] int64) for every training interaction
      of each user in the batch (a user listed twice gets both rows).
    """
    order = np.argsort(train.users, kind="stable")
    sorted_users = train.users[order]
    starts = np.searchsorted(sorted_users, users, side="left")
    ends = np.searchsorted(sorted_users, users, side="right")
    counts = ends - starts
    rows = np.repeat(np.arange(users.size), counts)
    offsets = np.repeat(starts - np.r_[0, np.cumsum(counts)[:-1]], counts)
    items = train.items[order][np.arange(counts.sum()) + offsets]
    return rows.astype(np.int64), items.astype(np.int64)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores per row, best first; ties go to the lower index.

    Args:
      scores: [B, C] float.
      k: how many, 1 <= k <= C.

    Returns:
      [B, k] int64 column indices.
    """
    if not 1 <= k <= scores.shape[1]:
        raise ValueError(f"k={k} must be in [1, {scores.shape[1]}]")
    # argpartition on the negated scores picks the k best; a stable sort orders them.
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < scores.shape[1] else None
    if part is None:
        return np.argsort(-scores, axis=1, kind="stable")
    part.sort(axis=1)  # ascending index, so the stable sort below breaks ties by index
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


class Method(abc.ABC):
    """A recommendation method: fit once, then score pairs or rank the catalogue.

    Subclasses implement `fit` and `score_all`; `score` defaults to gathering from
    `score_all` and may be overridden where scoring a few candidates is much cheaper.
    """

    #: the name evaluate.py and the pipeline know the method by, e.g. "item-cf".
    name: str = "method"
    #: whether scores are probabilities of a positive (then LogLoss is meaningful).
    outputs_probabilities: ClassVar[bool] = False
    #: False: `fit` learns nothing from a validation part (no early stopping, no tuning), so
    #: where the validation part is the users' latest history at test time (leave-one-out),
    #: the protocol fits the method on the training and validation parts together.
    uses_valid: ClassVar[bool] = True

    @abc.abstractmethod
    def fit(self, train: Dataset, valid: Dataset | None = None) -> Method:
        """Learns from the training interactions (and side information); returns self."""

    @abc.abstractmethod
    def score_all(self, users: np.ndarray) -> np.ndarray:
        """Scores of every item for each user.

        Args:
          users: [B] int user indices.

        Returns:
          [B, I] float32, higher = more recommended.
        """

    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Scores of given candidates.

        Args:
          users: [B] int user indices.
          items: [B, C] int item indices.

        Returns:
          [B, C] float32.
        """
        return np.take_along_axis(self.score_all(users), items, axis=1).astype(np.float32)

    def recommend(self, users: np.ndarray, k: int, exclude: Dataset | None = None) -> np.ndarray:
        """The top-k items of the full catalogue for each user.

        Args:
          users: [B] int user indices.
          k: list length.
          exclude: interactions whose items are never recommended to their user
            (normally the training part: already-seen items).

        Returns:
          [B, k] int64 item indices, best first.
        """
        users = np.asarray(users)
        scores = np.array(self.score_all(users), dtype=np.float32, copy=True)
        if exclude is not None:
            rows, items = seen_matrix_rows(exclude, users)
            scores[rows, items] = -np.inf
        return top_k(scores, k)
