"""EASE: a closed-form item-item linear model, the strong simple baseline of top-K ranking.

Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019. Not one of the study's
methods: it is here because a top-K comparison needs a floor stronger than item-CF (RecBole's
ItemKNN), and EASE is that floor in the literature.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

from shortrec_jax.baselines.similarity import binary_matrix, rating_matrix
from shortrec_jax.data.dataset import Dataset
from shortrec_jax.interface import Method

# A dense [I, I] float32 inverse: 20,000 items take 1.6 GB and minutes on 2 cores.
MAX_ITEMS = 20_000


@dataclasses.dataclass(eq=False, kw_only=True)
class EASE(Method):
    """EASE^R: B = argmin ||X - X B||^2 + lambda ||B||^2 subject to diag(B) = 0.

    With G = X^T X + lambda I and P = G^-1, the solution is B = I - P diag(1 / diag(P)), i.e.
    B_ij = -P_ij / P_jj off the diagonal (Steck 2019, Eq. 8). Scores of user u are x_u B, where
    x_u is the user's binary training row.

    Attributes:
      l2: lambda, the L2 penalty (Steck uses a few hundred on MovieLens).
      like_threshold: X holds ratings >= like_threshold; None: every interaction.
    """

    name: ClassVar[str] = "ease"
    l2: float = 500.0
    like_threshold: float | None = None

    def __post_init__(self) -> None:
        if self.l2 <= 0:
            raise ValueError(f"EASE l2 must be > 0, got {self.l2}")

    def fit(self, train: Dataset, valid: Dataset | None = None) -> EASE:
        """Solves for B on the training interactions; `valid` is not used."""
        if train.num_items > MAX_ITEMS:
            raise ValueError(
                f"EASE inverts a dense [I, I] matrix; {train.num_items:,} items exceed "
                f"MAX_ITEMS={MAX_ITEMS:,}"
            )
        x = binary_matrix(rating_matrix(train), self.like_threshold)  # [U, I] 0/1
        gram = (x.T @ x).toarray().astype(np.float64)  # [I, I]
        gram[np.diag_indices_from(gram)] += self.l2
        # float64 on the host only: the inverse of a large Gram matrix loses accuracy in float32.
        p = np.linalg.inv(gram)
        b = -p / np.diag(p)[None, :]
        np.fill_diagonal(b, 0.0)
        self._b = b.astype(np.float32)
        self._x = x.astype(np.float32).tocsr()
        return self

    def score_all(self, users: np.ndarray) -> np.ndarray:
        """[B, I] float32 scores x_u B."""
        return np.asarray(self._x[np.asarray(users)] @ self._b, dtype=np.float32)

    def score_history(self, items: np.ndarray) -> np.ndarray:
        """[I] float32 scores x B of any history (a new user's, a live one): x is the binary
        row holding `items` ([n] int item indices; repeats count once), so a user's own
        history gives that user's `score_all` row (with like_threshold=None)."""
        rows = np.unique(np.asarray(items, np.int64))
        return self._b[rows].sum(axis=0, dtype=np.float32)
