"""The study's traditional methods: item-based, user-based and content-based cosine CF (Eq. 1).

Two protocols want different predictions, so the neighbourhood methods offer both:

- aggregate="mean" (rating prediction; the study's protocol, which ranks only each user's
  held-out items and counts those rated >= 4): the baseline b_ui plus the similarity-weighted
  average of the k nearest neighbours' residuals r - b (Sarwar et al. 2001; Koren 2010,
  Eq. 10). Averaging, not summing, keeps a well-rated niche item from losing to a
  mediocre item that merely has many similar items in the user's history.
- aggregate="sum" (top-K over the full catalogue, e.g. Recall@10 with every unseen item a
  candidate): sum_j sim(i, j) x_uj over the neighbours, without normalising and without a
  baseline (Deshpande and Karypis, "Item-based top-N recommendation", TOIS 2004; RecBole's
  ItemKNN). The sum grows with the evidence, which is what a full ranking needs: an average
  lets an item with a single weak neighbour score as high as one with thirty strong ones.
  Pair it with k=None and a pruned table (max_neighbours=100) for the classic top-N scheme,
  in which each item keeps its most similar items and the user's history is summed over them.

Only positive similarities are neighbours: a weighted average with negative weights is not a
convex combination and explodes when the weights nearly cancel; Herlocker et al. (SIGIR 1999)
found negative correlations of no value for prediction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from shortrec_jax.baselines.item_tokens import TOKEN_SOURCES, item_token_counts, tf_idf
from shortrec_jax.baselines.similarity import (
    Baseline,
    BlockFn,
    SimilarityTable,
    batches_by_cost,
    binary_matrix,
    centre_rows,
    cosine_blocks,
    csr_rows_padded,
    item_knn_sums,
    l2_normalize_rows,
    rating_matrix,
    user_knn_sums,
)
from shortrec_jax.data.dataset import Dataset
from shortrec_jax.interface import Method

VALUE_KINDS = ("rating", "centered", "binary")
AGGREGATES = ("mean", "sum", "weighted")

# Entries of the stacked neighbour rows that user-CF regroups at once (about 100 MiB of
# temporaries).
_USER_KNN_ENTRIES = 1 << 22


@dataclasses.dataclass(eq=False, kw_only=True)
class _NeighbourhoodCF(Method):
    """Fields and fitting shared by item-CF and user-CF; see ItemCF for their meaning."""

    uses_valid: ClassVar[bool] = False

    k: int | None = 30
    shrink: float = 0.0
    values: str = "centered"
    aggregate: str = "mean"
    like_threshold: float | None = None
    max_neighbours: int | None = None
    item_damping: float = 25.0
    user_damping: float = 10.0

    def __post_init__(self) -> None:
        if self.values not in VALUE_KINDS:
            raise ValueError(f"values={self.values!r} is not one of {VALUE_KINDS}")
        if self.aggregate not in AGGREGATES:
            raise ValueError(f"aggregate={self.aggregate!r} is not one of {AGGREGATES}")
        if self.k is not None and self.k < 1:
            raise ValueError(f"k={self.k} must be >= 1 or None (every neighbour)")
        if self.shrink < 0 or self.item_damping < 0 or self.user_damping < 0:
            raise ValueError(
                f"shrink={self.shrink}, item_damping={self.item_damping} and "
                f"user_damping={self.user_damping} must be >= 0"
            )

    def _value_matrix(self, ratings: sp.csr_array, centre_by_user: bool) -> sp.csr_array:
        """The [U, I] values the similarity is computed on (and summed, for "sum")."""
        if self.values == "binary":
            return binary_matrix(ratings, self.like_threshold)
        if self.values == "rating":
            return ratings
        if centre_by_user:
            return centre_rows(ratings)[0]
        return centre_rows(ratings.T.tocsr())[0].T.tocsr()

    def _fit_common(self, train: Dataset, centre_by_user: bool) -> sp.csr_array:
        """Stores the baseline and the aggregated values; returns the similarity values."""
        ratings = rating_matrix(train)
        self._baseline = Baseline.fit(
            ratings, item_damping=self.item_damping, user_damping=self.user_damping
        )
        values = self._value_matrix(ratings, centre_by_user)
        # What the neighbours contribute: the residual r - b for "mean", the value for "sum",
        # the raw rating for "weighted".
        if self.aggregate == "mean":
            self._contrib = self._baseline.residuals(ratings)
        else:
            self._contrib = ratings if self.aggregate == "weighted" else values
        self._present = self._contrib.copy()
        self._present.data = np.ones_like(self._present.data)
        return values

    @property
    def similarity(self) -> SimilarityTable:
        """The fitted similarity table: [I, I] item-item (ItemCF) or [U, U] user-user (UserCF)."""
        return self._similarity

    def score_all(self, users: np.ndarray) -> np.ndarray:
        return self._scores(np.asarray(users, dtype=np.int64), None)

    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self._scores(np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64))

    def _scores(self, users: np.ndarray, items: np.ndarray | None) -> np.ndarray:
        """[B] users' scores of every item (items None) or of their [B, C] items -> [B, C]."""
        raise NotImplementedError

    def _finish(
        self, users: np.ndarray, items: np.ndarray | None, weighted: np.ndarray, weights: np.ndarray
    ) -> np.ndarray:
        """Scores from the neighbour sums: [B, C] weighted and weights -> [B, C] float32."""
        if self.aggregate == "sum":
            return weighted.astype(np.float32)
        ratio = np.divide(weighted, weights, out=np.zeros_like(weighted), where=weights > 0)
        if self.aggregate == "weighted":
            return ratio.astype(np.float32)
        return (self._baseline.predict(users, items) + ratio).astype(np.float32)


@dataclasses.dataclass(eq=False, kw_only=True)
class ItemCF(_NeighbourhoodCF):
    """Item-based collaborative filtering with cosine similarity (the study's Eq. 1).

    Sarwar et al., "Item-based collaborative filtering recommendation algorithms", WWW 2001;
    top-N variant: Deshpande and Karypis, TOIS 2004. The similarity of items i and j is the
    cosine of their [U] columns of the value matrix, optionally shrunk by n / (n + shrink)
    with n their number of common raters. The prediction for user u and item i is

      mean:     b_ui + sum_{j in N} s_ij (r_uj - b_uj) / sum_{j in N} s_ij   (b_ui if N is empty)
      sum:      sum_{j in N} s_ij x_uj
      weighted: sum_{j in N} s_ij r_uj / sum_{j in N} s_ij   (0 if N is empty)

    where N is the k items most similar to i among those u rated (all of them when k is None),
    x the value matrix and b_ui = mu + b_u + b_i the damped baseline (`Baseline`).

    Attributes:
      k: neighbours per prediction among the user's rated items (30); None = all of them.
      shrink: shrinkage constant of the similarity (0 = plain cosine).
      values: what the cosine is computed on: "rating"; "centered" (each rating minus its
        user's mean: the adjusted cosine of Sarwar et al., which removes the users' rating
        scales); "binary" (1 for a like: rating >= like_threshold, or any interaction).
      aggregate: "mean" for the study's protocol, "sum" for full-catalogue top-K (module doc);
        "weighted" is Sarwar et al.'s weighted sum of raw ratings with no baseline: with
        values="rating" and shrink=0 it is the study's Eq. 1 taken literally.
      like_threshold: rating counted as a like by values="binary"; None = any interaction.
      max_neighbours: each item keeps only its max_neighbours most similar items in the stored
        table (top-k pruning); None keeps every positive similarity up to 16,384 items, and
        500 above (similarity.AUTO_NEIGHBOURS).
      item_damping, user_damping: damping of the baseline's item and user biases (Koren 2010).
    """

    name: ClassVar[str] = "item-cf"

    def fit(self, train: Dataset, valid: Dataset | None = None) -> ItemCF:
        """Computes the item-item similarity from `train`; `valid` is not used."""
        values = self._fit_common(train, centre_by_user=True)
        self._similarity = SimilarityTable.from_blocks(
            train.num_items, self._similarity_blocks(train, values), self.max_neighbours
        )
        self._sparse_similarity_t = self._similarity.to_sparse().T.tocsr()
        return self

    def _similarity_blocks(self, train: Dataset, values: sp.csr_array) -> BlockFn:
        """Row chunks of the item-item similarity; [U, I] values -> (r0, r1) -> [c, I]."""
        return cosine_blocks(values.T.tocsr(), self.shrink)

    def _scores(self, users: np.ndarray, items: np.ndarray | None) -> np.ndarray:
        num_items = self._similarity.num_rows
        if self.k is None:
            weighted = (self._contrib[users] @ self._sparse_similarity_t).toarray()
            weights = (self._present[users] @ self._sparse_similarity_t).toarray()
            if items is not None:
                weighted = np.take_along_axis(weighted, items, axis=1)
                weights = np.take_along_axis(weights, items, axis=1)
            return self._finish(users, items, weighted, weights)
        history, history_values = csr_rows_padded(self._contrib, users)
        lengths = np.diff(self._contrib.indptr)[users]
        shape = (users.size, num_items if items is None else items.shape[1])
        weighted = np.zeros(shape, dtype=np.float32)
        weights = np.zeros(shape, dtype=np.float32)
        for part in batches_by_cost(np.maximum(lengths, 1) * shape[1]):
            width = max(1, int(lengths[part].max()))
            weighted[part], weights[part] = item_knn_sums(
                self._similarity,
                history[part, :width],
                history_values[part, :width],
                self.k,
                None if items is None else items[part],
            )
        return self._finish(users, items, weighted, weights)


@dataclasses.dataclass(eq=False, kw_only=True)
class UserCF(_NeighbourhoodCF):
    """User-based collaborative filtering with cosine similarity (the study's Eq. 1).

    Resnick et al., "GroupLens", CSCW 1994; Herlocker et al., SIGIR 1999. The similarity of
    users u and v is the cosine of their [I] rows of the value matrix, optionally shrunk by
    n / (n + shrink) with n their number of co-rated items. The prediction is

      mean: b_ui + sum_{v in N} s_uv (r_vi - b_vi) / sum_{v in N} s_uv   (b_ui if N is empty)
      sum:  sum_{v in N} s_uv x_vi

    where N is the k users most similar to u among those who rated i (all when k is None).

    Attributes:
      k, shrink, aggregate, like_threshold, item_damping, user_damping: as in ItemCF.
      values: "rating"; "centered" (each rating minus its item's mean, so that two users
        agree when they both like an item more than others do, not merely because both rate a
        popular film highly); "binary".
      max_neighbours: each user keeps only its max_neighbours most similar users (None: every
        positive similarity up to 16,384 users, 500 above).
    """

    name: ClassVar[str] = "user-cf"

    def fit(self, train: Dataset, valid: Dataset | None = None) -> UserCF:
        """Computes the user-user similarity from `train`; `valid` is not used."""
        values = self._fit_common(train, centre_by_user=False)
        self._similarity = SimilarityTable.from_blocks(
            train.num_users, cosine_blocks(values, self.shrink), self.max_neighbours
        )
        self._sparse_similarity = self._similarity.to_sparse()
        # Ratings a user's neighbour list stacks up: the cost of user_knn_sums per user.
        ratings_per_user = np.diff(self._contrib.indptr).astype(np.float64)
        self._stacked = np.rint(self._sparse_similarity.astype(bool) @ ratings_per_user)
        return self

    def _scores(self, users: np.ndarray, items: np.ndarray | None) -> np.ndarray:
        num_items = self._contrib.shape[1]
        if self.k is None:
            neighbours = self._sparse_similarity[users]
            weighted = (neighbours @ self._contrib).toarray()
            weights = (neighbours @ self._present).toarray()
        else:
            weighted = np.zeros((users.size, num_items), dtype=np.float32)
            weights = np.zeros((users.size, num_items), dtype=np.float32)
            budget = _USER_KNN_ENTRIES
            for part in batches_by_cost(self._stacked[users].astype(np.int64), budget):
                weighted[part], weights[part] = user_knn_sums(
                    self._similarity, users[part], self._contrib, self.k
                )
        if items is not None:
            weighted = np.take_along_axis(weighted, items, axis=1)
            weights = np.take_along_axis(weights, items, axis=1)
        return self._finish(users, items, weighted, weights)


@dataclasses.dataclass(eq=False, kw_only=True)
class ContentCF(Method):
    """Content-based recommendation: cosine of a user profile and item content (Eq. 1).

    Pazzani and Billsus, "Content-based recommendation systems", The Adaptive Web, 2007. Each
    item is a feature vector f_i: one block per source, each block TF-IDF weighted (bags) and
    L2-normalised so that every source counts alike, then the whole vector L2-normalised. The
    profile of user u is p_u = sum_j w_uj f_j over the items u rated (or liked), and the score
    is cos(p_u, f_i) (0 for an item without features or a user without a profile).

    Sources: "genres" (multi-hot), "tags" (`Dataset.item_tags`, counts), "kg" (the entities one
    hop from the item's KG entity, over `kg_relations`), "vectors" (`Dataset.item_vectors`,
    e.g. SIFT keyframe vectors).

    Attributes:
      features: the sources used (("genres", "kg")).
      kg_relations: relations followed for "kg"; None follows all.
      weighting: w_uj = 1 ("uniform"), r_uj ("rating"), or r_uj minus the user's mean
        ("centered", the default: the profile then points from what the user dislikes to
        what they like, which is what ranking a user's own candidates needs).
      like_threshold: only items rated >= like_threshold enter the profile; None = every
        rated item.
    """

    uses_valid: ClassVar[bool] = False

    name: ClassVar[str] = "content"
    features: Sequence[str] = ("genres", "kg")
    kg_relations: Sequence[str] | None = None
    weighting: str = "centered"
    like_threshold: float | None = None

    _WEIGHTINGS: ClassVar[tuple[str, ...]] = ("uniform", "rating", "centered")

    def __post_init__(self) -> None:
        if self.weighting not in self._WEIGHTINGS:
            raise ValueError(f"weighting={self.weighting!r} is not one of {self._WEIGHTINGS}")
        known = (*TOKEN_SOURCES, "vectors")
        unknown = [f for f in self.features if f not in known]
        if unknown or not self.features:
            raise ValueError(
                f"features={tuple(self.features)!r} must be a non-empty subset of {known}"
            )

    def fit(self, train: Dataset, valid: Dataset | None = None) -> ContentCF:
        """Builds the item vectors and the user profiles from `train`; `valid` is not used."""
        blocks = []
        for source in self.features:
            if source == "vectors":
                if train.item_vectors is None:
                    raise ValueError(f"data set {train.name!r} has no item_vectors")
                blocks.append(l2_normalize_rows(sp.csr_array(train.item_vectors)))
            else:
                counts, _ = item_token_counts(train, (source,), self.kg_relations)
                blocks.append(l2_normalize_rows(tf_idf(counts)))
        self._item_vectors = l2_normalize_rows(sp.hstack(blocks, format="csr"))  # [I, D]
        ratings = rating_matrix(train)
        if self.weighting == "centered":
            weights = centre_rows(ratings)[0]
        elif self.weighting == "rating":
            weights = ratings.copy()
        else:
            weights = binary_matrix(ratings, None)
        if self.like_threshold is not None:
            weights.data = np.where(ratings.data >= self.like_threshold, weights.data, 0.0)
            weights.eliminate_zeros()
        self._profiles = l2_normalize_rows(weights @ self._item_vectors)  # [U, D]
        self._item_vectors_t = self._item_vectors.T.tocsr()
        return self

    def score_all(self, users: np.ndarray) -> np.ndarray:
        users = np.asarray(users, dtype=np.int64)
        return (self._profiles[users] @ self._item_vectors_t).toarray().astype(np.float32)
