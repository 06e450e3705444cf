"""Sparse rating matrices, cosine similarity tables and k-nearest-neighbour aggregation.

The machinery shared by item-CF, user-CF and the knowledge-graph method. Interaction matrices
are always SciPy sparse ([U, I] CSR), so the same code runs on MovieLens 100K and 25M. A
similarity table is computed in row chunks (each chunk a dense [c, R] block that is pruned to
each row's most similar neighbours before the next one is made), so its memory is bounded by
the pruning, not by R x R; it is kept dense as well when it is small enough for fast gathers.

Cosine similarity is the study's Eq. 1: cos(a, b) = a . b / (|a| |b|), over the full vectors
(a missing rating counts as 0; with mean-centred values that is "no deviation from the mean").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

import numpy as np
import scipy.sparse as sp

from shortrec_jax.data.dataset import Dataset

#: A similarity table with at most this many entries (R x R) is also kept dense (256 MiB of
#: float32): the k-nearest-neighbour gathers are then plain array indexing.
DENSE_LIMIT = 1 << 26

#: Catalogues larger than this prune each row of a similarity table to AUTO_NEIGHBOURS entries
#: when the caller leaves `max_neighbours` unset: every positive similarity of a large catalogue
#: would not fit in memory (ml-25m has 59,047 items).
AUTO_EXACT_ROWS = 16_384
AUTO_NEIGHBOURS = 500

# Elements of one dense temporary block ([c, R] similarity chunks, [B, L, C] gathers): 32 MiB of
# float32, small enough for any machine and large enough that NumPy's per-call overhead vanishes.
_BLOCK_ELEMENTS = 1 << 23

# A block function returns the raw similarities of rows r0:r1 against every row: [r1 - r0, R].
BlockFn = Callable[[int, int], np.ndarray]


# -- interaction matrices ----------------------------------------------------------------------


def rating_matrix(train: Dataset, values: np.ndarray | None = None) -> sp.csr_array:
    """The [U, I] sparse matrix of training ratings (or of other per-interaction values).

    Repeated (user, item) pairs (a data set loaded with duplicates="keep") are averaged, so
    every stored entry is one opinion of one user about one item.

    Args:
      train: the training interactions.
      values: [N] per-interaction values to store instead of `train.ratings`.

    Returns:
      [U, I] float32 CSR with sorted indices; only observed pairs are stored.
    """
    vals = train.ratings if values is None else np.asarray(values)
    key = train.users.astype(np.int64) * train.num_items + train.items
    uniq, inverse = np.unique(key, return_inverse=True)
    sums = np.bincount(inverse, weights=vals.astype(np.float64), minlength=uniq.size)
    counts = np.bincount(inverse, minlength=uniq.size)
    rows = uniq // train.num_items
    indptr = np.zeros(train.num_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=train.num_users), out=indptr[1:])
    return sp.csr_array(
        ((sums / counts).astype(np.float32), (uniq % train.num_items).astype(np.int32), indptr),
        shape=(train.num_users, train.num_items),
    )


def binary_matrix(ratings: sp.csr_array, like_threshold: float | None) -> sp.csr_array:
    """1 where a user likes an item (rating >= like_threshold; any interaction when None).

    Args:
      ratings: [U, I] CSR ratings.

    Returns:
      [U, I] float32 CSR of ones, without the pairs below the threshold.
    """
    out = ratings.copy()
    keep = np.ones(out.nnz, bool) if like_threshold is None else out.data >= like_threshold
    out.data = keep.astype(np.float32)
    out.eliminate_zeros()
    return out


def centre_rows(matrix: sp.csr_array) -> tuple[sp.csr_array, np.ndarray]:
    """Subtracts each row's mean over its stored entries (not over the zeros).

    Args:
      matrix: [R, C] CSR.

    Returns:
      ([R, C] CSR with the same pattern, means [R] float32; 0 for an empty row).
    """
    counts = np.diff(matrix.indptr)
    rows = np.repeat(np.arange(matrix.shape[0]), counts)
    sums = np.bincount(rows, weights=matrix.data.astype(np.float64), minlength=matrix.shape[0])
    means = sums / np.maximum(counts, 1)
    out = matrix.copy()
    out.data = (out.data - np.repeat(means, counts)).astype(np.float32)
    return out, means.astype(np.float32)


def l2_normalize_rows(matrix: sp.csr_array) -> sp.csr_array:
    """Each row divided by its Euclidean norm; all-zero rows stay zero. [R, C] -> [R, C]."""
    norms = np.sqrt(np.asarray((matrix.multiply(matrix)).sum(axis=1), dtype=np.float64)).ravel()
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    out = matrix.copy()
    out.data = (out.data * np.repeat(scale, np.diff(out.indptr))).astype(np.float32)
    return out


@dataclasses.dataclass(frozen=True)
class Baseline:
    """Damped baseline estimates b_ui = mu + b_u + b_i (Koren, "Factor in the neighbors",
    TKDD 2010, Sec. 2.1).

    b_i = sum_u (r_ui - mu) / (item_damping + n_i) and then
    b_u = sum_i (r_ui - mu - b_i) / (user_damping + n_u): each mean is shrunk toward the global
    mean, so an item rated once by an enthusiast does not top every list.

    Attributes:
      mu: the global mean rating.
      user_bias: [U] float32, 0 for users without training ratings.
      item_bias: [I] float32, 0 for items without training ratings.
    """

    mu: float
    user_bias: np.ndarray
    item_bias: np.ndarray

    @classmethod
    def fit(cls, ratings: sp.csr_array, *, item_damping: float, user_damping: float) -> Baseline:
        """Estimates from [U, I] CSR ratings."""
        coo = ratings.tocoo()
        users, items = coo.coords
        r = coo.data.astype(np.float64)
        num_users, num_items = ratings.shape
        mu = float(r.mean()) if r.size else 0.0
        b_i = _damped_mean(items, r - mu, num_items, item_damping)
        b_u = _damped_mean(users, r - mu - b_i[items], num_users, user_damping)
        return cls(mu=mu, user_bias=b_u.astype(np.float32), item_bias=b_i.astype(np.float32))

    def predict(self, users: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        """b_ui for [B] users and [B, C] items (every item when None): [B, C] float32."""
        item_bias = self.item_bias[None, :] if items is None else self.item_bias[items]
        return (self.mu + self.user_bias[users][:, None] + item_bias).astype(np.float32)

    def residuals(self, ratings: sp.csr_array) -> sp.csr_array:
        """r_ui - b_ui on the stored entries of [U, I] CSR ratings, same pattern."""
        rows = np.repeat(np.arange(ratings.shape[0]), np.diff(ratings.indptr))
        out = ratings.copy()
        base = self.mu + self.user_bias[rows] + self.item_bias[ratings.indices]
        out.data = (ratings.data - base).astype(np.float32)
        return out


# -- similarity tables -------------------------------------------------------------------------


class SimilarityTable:
    """A pruned R x R similarity matrix with non-negative entries and a zero diagonal.

    Row r holds r's neighbours, sorted by descending similarity (ties by index); only strictly
    positive similarities are stored. The arrays are kept in this order on purpose and are never
    handed to SciPy, which may re-sort indices in place.

    Attributes:
      indptr: [R + 1] int64; row r is entries indptr[r]:indptr[r + 1].
      indices: [nnz] int32 neighbour of each entry.
      data: [nnz] float32 similarity of each entry, > 0.
      dense_t: the transpose S^T as a dense [R + 1, R] float32 when R * R <= DENSE_LIMIT,
        with a zero last row that padding indices (-1) select; None for large tables.
    """

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray) -> None:
        self.indptr = indptr.astype(np.int64)
        self.indices = indices.astype(np.int32)
        self.data = data.astype(np.float32)
        self.num_rows = self.indptr.size - 1
        self.dense_t: np.ndarray | None = None
        if self.num_rows * self.num_rows <= DENSE_LIMIT:
            # Stored transposed: gathering the columns of a user's history is then a gather of
            # contiguous rows.
            self.dense_t = np.zeros((self.num_rows + 1, self.num_rows), dtype=np.float32)
            self.dense_t[self.indices, self._entry_rows()] = self.data
        self._csc: sp.csc_array | None = None

    @classmethod
    def from_blocks(
        cls, num_rows: int, block_fn: BlockFn, max_neighbours: int | None
    ) -> SimilarityTable:
        """Builds the table chunk by chunk.

        Args:
          num_rows: R.
          block_fn: (r0, r1) -> [r1 - r0, R] raw similarities of rows r0:r1.
          max_neighbours: entries kept per row (the most similar); None keeps every positive
            similarity when R <= AUTO_EXACT_ROWS, else AUTO_NEIGHBOURS.

        Returns:
          The table; the diagonal and every similarity <= 0 are dropped.
        """
        if max_neighbours is None and num_rows > AUTO_EXACT_ROWS:
            max_neighbours = AUTO_NEIGHBOURS
        if max_neighbours is not None and max_neighbours < 1:
            raise ValueError(f"max_neighbours={max_neighbours} must be >= 1 or None")
        counts, indices, data = [], [], []
        for r0, r1 in _chunks(num_rows, max(1, _BLOCK_ELEMENTS // max(1, num_rows))):
            block = np.asarray(block_fn(r0, r1), dtype=np.float32)  # [c, R]
            block[np.arange(r1 - r0), np.arange(r0, r1)] = 0.0
            if max_neighbours is not None and max_neighbours < num_rows:
                # The cut itself is an (unordered, deterministic) partition; ties exactly at
                # the cut are broken by the partition, not by index.
                order = np.argpartition(-block, max_neighbours - 1, axis=1)[:, :max_neighbours]
                order.sort(axis=1)
            else:
                order = np.broadcast_to(np.arange(num_rows), block.shape)
            # Each row by descending similarity, ties by ascending index (a stable sort).
            vals = np.take_along_axis(block, order, axis=1)
            order = np.take_along_axis(order, np.argsort(-vals, axis=1, kind="stable"), axis=1)
            vals = np.take_along_axis(block, order, axis=1)
            keep = vals > 0
            counts.append(keep.sum(axis=1))
            indices.append(order[keep])
            data.append(vals[keep])
        indptr = np.zeros(num_rows + 1, dtype=np.int64)
        if counts:
            np.cumsum(np.concatenate(counts), out=indptr[1:])
        cat = np.concatenate
        return cls(
            indptr,
            cat(indices) if indices else np.zeros(0, np.int32),
            cat(data) if data else np.zeros(0, np.float32),
        )

    def _entry_rows(self) -> np.ndarray:
        return np.repeat(np.arange(self.num_rows), np.diff(self.indptr))

    def to_sparse(self) -> sp.csr_array:
        """[R, R] float32 CSR (a copy with sorted indices)."""
        coo = sp.coo_array(
            (self.data, (self._entry_rows(), self.indices)), shape=(self.num_rows, self.num_rows)
        )
        return coo.tocsr()

    def to_dense(self) -> np.ndarray:
        """[R, R] float32."""
        if self.dense_t is not None:
            return self.dense_t[:-1].T.copy()
        return self.to_sparse().toarray()

    def gather(self, cols: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Similarities of given rows to given columns, per batch element, column-major.

        Args:
          cols: [B, L] int column indices; -1 is padding and gathers 0.
          rows: [B, C] int row indices; None = every row (C = R).

        Returns:
          [B, L, C] float32 with out[b, l, c] = S[rows[b, c], cols[b, l]].
        """
        if self.dense_t is not None:
            if rows is None:
                return self.dense_t[cols]
            return self.dense_t[cols[:, :, None], rows[:, None, :]]
        if self._csc is None:
            self._csc = self.to_sparse().tocsc()
        width = self.num_rows if rows is None else rows.shape[1]
        out = np.zeros((cols.shape[0], cols.shape[1], width), dtype=np.float32)
        for b in range(cols.shape[0]):  # one SciPy column slice per user: [R, L_b]
            valid = np.flatnonzero(cols[b] >= 0)
            block = self._csc[:, cols[b, valid]].toarray().T  # [L_b, R]
            out[b, valid] = block if rows is None else block[:, rows[b]]
        return out


def cosine_blocks(vectors: sp.csr_array, shrink: float = 0.0) -> BlockFn:
    """Row-chunked cosine similarity between the rows of `vectors`, with optional shrinkage.

    Shrinkage (Koren 2010, Eq. 9 for Pearson; the same damping for cosine): sim * n / (n + shrink)
    with n the number of dimensions where both rows are non-zero (users who rated both items),
    so a similarity resting on two co-raters counts less than one resting on two hundred.

    Args:
      vectors: [R, D] CSR, one vector per row.
      shrink: the shrinkage constant, >= 0; 0 is plain cosine.

    Returns:
      A block function (r0, r1) -> [r1 - r0, R] float32.
    """
    if shrink < 0:
        raise ValueError(f"shrink={shrink} must be >= 0")
    unit = l2_normalize_rows(vectors)
    unit_t = unit.T.tocsr()
    support = (vectors != 0).astype(np.float32)
    support_t = support.T.tocsr()

    def block(r0: int, r1: int) -> np.ndarray:
        sims = (unit[r0:r1] @ unit_t).toarray()  # [c, R]
        if shrink > 0:
            common = (support[r0:r1] @ support_t).toarray()  # [c, R] co-raters
            sims *= common / (common + shrink)
        return sims

    return block


# -- neighbourhood aggregation -----------------------------------------------------------------


def item_knn_sums(
    table: SimilarityTable,
    history: np.ndarray,
    history_values: np.ndarray,
    k: int,
    candidates: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Sums over the k items most similar to each candidate among the items a user has rated.

    For user b and candidate c, N_k(b, c) is the set of history items j with the k largest
    S[c, j] > 0; every item tied with the k-th similarity is kept as well, so the result never
    depends on the order of the history.

    Args:
      table: the item-item similarity, S[i, j].
      history: [B, L] int items each user rated, -1 = padding.
      history_values: [B, L] float value of each history item (0 at padding).
      k: neighbours per prediction, >= 1.
      candidates: [B, C] int items to score; None = every item (C = I).

    Returns:
      (weighted [B, C] = sum_{j in N_k} S[c, j] * value_j, weights [B, C] = sum_{j in N_k}
      S[c, j]), float32.
    """
    sims = table.gather(history, candidates)  # [B, L, C]
    length = history.shape[1]
    if length > k:
        kth = np.partition(sims, length - k, axis=1)[:, length - k : length - k + 1]  # [B, 1, C]
        sims *= sims >= kth  # keep the k largest (and ties); a fresh array, so in place is safe
    weighted = np.einsum("blc,bl->bc", sims, history_values, dtype=np.float32)
    return weighted, sims.sum(axis=1, dtype=np.float32)


def user_knn_sums(
    table: SimilarityTable,
    users: np.ndarray,
    values: sp.csr_array,
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Sums over the k users most similar to each user among those who rated each item.

    For user u and item i, N_k(u, i) is the k users v with the largest S[u, v] > 0 among the
    raters of i (ties at the cut broken by user index, through the table's row order). Walking
    u's neighbour list in order and counting raters per item selects them without a sort: the
    neighbours' rows are stacked in rank order and regrouped by item with SciPy's CSR -> CSC
    conversion, which keeps the row order within each column.

    Args:
      table: the user-user similarity, S[u, v].
      users: [B] int users.
      values: [U, I] CSR value of each rating (e.g. its residual r_vi - b_vi).
      k: neighbours per prediction, >= 1.

    Returns:
      (weighted [B, I] = sum_{v in N_k} S[u, v] * value_vi, weights [B, I] =
      sum_{v in N_k} S[u, v]), float32.
    """
    num_items = values.shape[1]
    starts, ends = table.indptr[users], table.indptr[users + 1]
    entry = ragged_arange(starts, ends)  # neighbour entries of the batch, in (b, rank) order
    owner = np.repeat(np.arange(users.size), ends - starts)
    neigh_rows = values[table.indices[entry]]  # [E, I]: each neighbour's ratings
    per_row = np.diff(neigh_rows.indptr)
    shifted = sp.csr_array(
        (
            neigh_rows.data,
            neigh_rows.indices + num_items * np.repeat(owner, per_row),
            neigh_rows.indptr,
        ),
        shape=(entry.size, users.size * num_items),
    )
    by_item = shifted.tocsc()  # column b * I + i; rows (= neighbour rank) ascending within it
    col_len = np.diff(by_item.indptr)
    pos = np.arange(by_item.nnz) - np.repeat(by_item.indptr[:-1], col_len)
    keep = pos < k
    cols = np.repeat(np.arange(users.size * num_items), col_len)[keep]
    sim = table.data[entry][by_item.indices[keep]].astype(np.float64)
    size = users.size * num_items
    weighted = np.bincount(cols, weights=sim * by_item.data[keep], minlength=size)
    weights = np.bincount(cols, weights=sim, minlength=size)
    shape = (users.size, num_items)
    return weighted.reshape(shape).astype(np.float32), weights.reshape(shape).astype(np.float32)


# -- small helpers -----------------------------------------------------------------------------


def ragged_arange(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """concat(arange(s, e) for s, e in zip(starts, ends)) without a Python loop: [sum(e - s)]."""
    lengths = ends - starts
    offsets = np.repeat(starts - np.r_[0, np.cumsum(lengths)[:-1]], lengths)
    return np.arange(lengths.sum(), dtype=np.int64) + offsets


def csr_rows_padded(matrix: sp.csr_array, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The stored entries of the given rows, left-aligned and padded.

    Args:
      matrix: [R, C] CSR.
      rows: [B] int.

    Returns:
      (columns [B, L] int64 with -1 padding, values [B, L] float32 with 0 padding), L the
      longest of the rows (at least 1).
    """
    starts, ends = matrix.indptr[rows], matrix.indptr[rows + 1]
    lengths = ends - starts
    width = max(1, int(lengths.max(initial=0)))
    cols = np.full((rows.size, width), -1, dtype=np.int64)
    vals = np.zeros((rows.size, width), dtype=np.float32)
    mask = np.arange(width)[None, :] < lengths[:, None]
    entry = ragged_arange(starts, ends)
    cols[mask] = matrix.indices[entry]
    vals[mask] = matrix.data[entry]
    return cols, vals


def batches_by_cost(costs: np.ndarray, budget: int = _BLOCK_ELEMENTS) -> Iterator[np.ndarray]:
    """Positions of a batch grouped so that each group's padded cost stays within the budget.

    Positions are visited in ascending cost, so a group pads to a similar length; a group is
    cut when (group size) x (largest cost in it) would pass `budget` (a single position always
    forms a group).

    Args:
      costs: [B] int, the per-position cost (e.g. history length x candidates).

    Yields:
      [b] int64 positions into the batch.
    """
    order = np.argsort(costs, kind="stable")
    start = 0
    while start < order.size:
        stop = start + 1
        while stop < order.size and (stop + 1 - start) * max(1, int(costs[order[stop]])) <= budget:
            stop += 1
        yield order[start:stop]
        start = stop


def _damped_mean(groups: np.ndarray, values: np.ndarray, size: int, damping: float) -> np.ndarray:
    """sum(values of group g) / (damping + count of g) for g in 0..size-1; 0 for an empty group."""
    sums = np.bincount(groups, weights=values, minlength=size)
    denom = damping + np.bincount(groups, minlength=size)
    return np.divide(sums, denom, out=np.zeros(size), where=denom > 0)


def _chunks(total: int, size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, total, size):
        yield start, min(total, start + size)
