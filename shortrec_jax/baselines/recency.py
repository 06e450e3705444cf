"""Item-CF with the history weighted by recency: the floor a sequential model must clear.

Not one of the study's methods. Plain item-CF sums the similarities of a candidate to every
item in the user's history alike; here the item `s` steps back from the most recent one
counts `decay ** s`, so the last few items decide most of the ranking, which is what a
next-item model learns too. On ml-100k leave-one-out (docs/references.md) it reaches NDCG@10
0.080 against 0.056 for the same item-CF on the whole history unweighted.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from shortrec_jax.baselines.similarity import l2_normalize_rows
from shortrec_jax.data.dataset import Dataset
from shortrec_jax.data.sequences import SequenceData
from shortrec_jax.data.splits import concat
from shortrec_jax.interface import Method


@dataclasses.dataclass(eq=False, kw_only=True)
class RecencyItemCF(Method):
    """score(u, i) = sum_s decay**s cos(i, h_u[-1 - s]), over the user's history h_u.

    The cosine is taken between the items' binary [U] columns of every interaction `fit`
    saw; s = 0 is the user's most recent item (by timestamp). An item seen several times
    counts once, at its most recent position.

    Attributes:
      decay: weight ratio per step back, in (0, 1]; 1 is plain item-CF on the whole history.
      max_history: only the most recent this many items count (their weight beyond is tiny).
    """

    name: ClassVar[str] = "recency-cf"
    decay: float = 0.9
    max_history: int = 200

    def __post_init__(self) -> None:
        if not 0 < self.decay <= 1:
            raise ValueError(f"recency-cf decay must be in (0, 1], got {self.decay}")
        if self.max_history < 1:
            raise ValueError(f"recency-cf max_history must be >= 1, got {self.max_history}")

    def fit(self, train: Dataset, valid: Dataset | None = None) -> RecencyItemCF:
        """Item similarities and histories from `train` and `valid` (the history at test time)."""
        seen = train if valid is None else concat([train, valid])
        pairs = np.unique(seen.users.astype(np.int64) * seen.num_items + seen.items)
        x = sp.csr_array(
            (np.ones(pairs.size, np.float32), (pairs // seen.num_items, pairs % seen.num_items)),
            shape=(seen.num_users, seen.num_items),
        )
        unit = l2_normalize_rows(x.T.tocsr())  # [I, U] unit item columns
        similarity = (unit @ unit.T).tocsr()  # [I, I] sparse cosine
        # An item is not its own neighbour (it is already seen).
        similarity = (similarity - sp.diags_array(similarity.diagonal())).tocsr()
        similarity.eliminate_zeros()
        self._similarity = similarity
        self._sequences = SequenceData.from_dataset(seen)
        return self

    def history_weights(self, users: np.ndarray) -> sp.csr_array:
        """[B, I] sparse decay**steps_back of each user's distinct recent items."""
        seqs = self._sequences
        rows, cols, vals = [], [], []
        for row, u in enumerate(np.asarray(users).tolist()):
            items = seqs.history(u)[::-1][: self.max_history] - 1 if u < seqs.num_users else []
            # First occurrence in reverse time order = the most recent position.
            distinct, first = np.unique(np.asarray(items, np.int64), return_index=True)
            rows.append(np.full(distinct.size, row))
            cols.append(distinct)
            vals.append(self.decay ** first.astype(np.float64))
        return sp.csr_array(
            (np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))),
            shape=(len(rows), seqs.num_items),
        )

    def score_all(self, users: np.ndarray) -> np.ndarray:
        """[B, I] float32 recency-weighted similarity sums."""
        return np.asarray((self.history_weights(users) @ self._similarity).toarray(), np.float32)
