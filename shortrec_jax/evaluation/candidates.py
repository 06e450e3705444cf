"""PerUserCandidates of the ranking measures: each user's own items as a padded matrix, scored
through `Method.score`, and the top of each row as a list.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from shortrec_jax import metrics
from shortrec_jax.data.dataset import Dataset
from shortrec_jax.interface import Method, seen_matrix_rows, top_k


@dataclasses.dataclass(frozen=True)
class PerUserCandidates:
    """Each user's own candidates (e.g. held-out items) as a padded matrix.

    Attributes:
      users: [U] int64 distinct users, ascending.
      items: [U, C] int64 item indices, the user's in the part's order; padding holds 0.
      ratings: [U, C] float32 ratings; padding holds 0.
      mask: [U, C] bool, True for real candidates.
    """

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    mask: np.ndarray

    @classmethod
    def of(cls, part: Dataset) -> PerUserCandidates:
        """The interactions of `part` grouped by user (C = the largest group)."""
        order = np.argsort(part.users, kind="stable")
        users_sorted = part.users[order].astype(np.int64)
        users, starts, counts = np.unique(users_sorted, return_index=True, return_counts=True)
        width = int(counts.max()) if counts.size else 0
        row = np.repeat(np.arange(users.size), counts)
        col = np.arange(order.size) - np.repeat(starts, counts)
        items = np.zeros((users.size, width), np.int64)
        ratings = np.zeros((users.size, width), np.float32)
        mask = np.zeros((users.size, width), bool)
        items[row, col] = part.items[order]
        ratings[row, col] = part.ratings[order]
        mask[row, col] = True
        return cls(users=users, items=items, ratings=ratings, mask=mask)


def score_candidates(method: Method, cands: PerUserCandidates, batch_size: int) -> np.ndarray:
    """`method.score` of every candidate, `batch_size` users per call.

    Returns:
      [U, C] float64 scores; padding slots hold whatever the method gave item 0 (mask them).
    """
    out = np.zeros(cands.items.shape, np.float64)
    for lo in range(0, cands.users.size, batch_size):
        hi = lo + batch_size
        scores = np.asarray(method.score(cands.users[lo:hi], cands.items[lo:hi]))
        if scores.shape != cands.items[lo:hi].shape:
            raise ValueError(
                f"{method.name}.score returned shape {scores.shape} for candidates of shape "
                f"{cands.items[lo:hi].shape}"
            )
        out[lo:hi] = scores
    return out


def interaction_mask(part: Dataset, users: np.ndarray, num_items: int) -> np.ndarray:
    """[B, I] bool, True where user users[b] has an interaction with the item in `part`."""
    out = np.zeros((users.size, num_items), bool)
    rows, items = seen_matrix_rows(part, users)
    out[rows, items] = True
    return out


def top_lists(scores: np.ndarray, mask: np.ndarray, length: int) -> np.ndarray:
    """The top `length` candidates per row (ties to the lower column), -1 past the candidates.

    Args:
      scores: [B, C]; mask: [B, C] bool, the real candidates; length: L.

    Returns:
      [B, min(L, C)] int64 column indices.
    """
    length = min(length, scores.shape[1])
    cols = top_k(np.where(mask, scores, -np.inf), length)
    return np.where(np.take_along_axis(mask, cols, axis=1), cols, metrics.EMPTY)
