"""EASE and DLAE: closed-form item-item linear models, the strong simple baselines of top-K
ranking.

Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019 (EASE), and Steck,
"Autoencoders that don't overfit towards the identity", NeurIPS 2020 (DLAE, the denoising
linear autoencoder). Not the study's methods: they are here because a top-K comparison needs a
floor stronger than item-CF (RecBole's ItemKNN), and EASE is that floor in the literature.
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

    uses_valid: ClassVar[bool] = False

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
                f"{self.name} solves a dense [I, I] system; {train.num_items:,} items exceed "
                f"MAX_ITEMS={MAX_ITEMS:,}"
            )
        x = binary_matrix(rating_matrix(train), self.like_threshold)  # [U, I] 0/1
        # float64 on the host only: the inverse of a large Gram matrix loses accuracy in float32.
        gram = (x.T @ x).toarray().astype(np.float64)  # [I, I]
        self._b = self._solve(gram).astype(np.float32)
        self._x = x.astype(np.float32).tocsr()
        return self

    def _solve(self, gram: np.ndarray) -> np.ndarray:
        """[I, I] B from the Gram matrix X^T X ([I, I] float64)."""
        p = np.linalg.inv(gram + self.l2 * np.eye(gram.shape[0]))
        b = -p / np.diag(p)[None, :]
        np.fill_diagonal(b, 0.0)
        return b

    def score_all(self, users: np.ndarray) -> np.ndarray:
        """[B, I] float32 scores x_u B."""
        return np.asarray(self._x[np.asarray(users)] @ self._b, dtype=np.float32)

    def score_history(self, items: np.ndarray) -> np.ndarray:
        """[I] float32 scores x B of any history (a new user's, a live one): x is the binary
        row holding `items` ([n] int item indices; repeats count once), so a user's own
        history gives that user's `score_all` row (with like_threshold=None)."""
        rows = np.unique(np.asarray(items, np.int64))
        return self._b[rows].sum(axis=0, dtype=np.float32)


@dataclasses.dataclass(eq=False, kw_only=True)
class DLAE(EASE):
    """DLAE: the linear autoencoder trained with input dropout, in closed form.

    Dropping each input with probability p and training to reconstruct the full row is, in
    expectation, L2 regularisation weighted by each item's own count (Steck 2020, Eq. 5):
    B = (G + Lambda)^-1 G with G = X^T X and Lambda = diag(p / (1 - p) * diag(G) + lambda).
    The dropout keeps B away from the identity, so no zero-diagonal constraint is needed;
    popular items get the stronger penalty, unlike EASE's uniform one.

    Attributes:
      l2: lambda, the uniform part of the penalty.
      dropout: p in [0, 1), the input dropout rate.
      like_threshold: as EASE's.
    """

    name: ClassVar[str] = "dlae"
    l2: float = 300.0
    dropout: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"DLAE dropout must be in [0, 1), got {self.dropout}")

    def _solve(self, gram: np.ndarray) -> np.ndarray:
        penalty = self.dropout / (1.0 - self.dropout) * np.diag(gram) + self.l2
        return np.linalg.solve(gram + np.diag(penalty), gram)
