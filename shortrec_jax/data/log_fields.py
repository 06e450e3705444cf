"""Fields fitted on the training log: user and item statistics, and the user's history bag.

What a ranker in production has besides ids and side information: how many items a user has
rated and how high, how often an item is rated and liked, and what the user rated before
(`fields.py`, kinds "statistic" and "history"). Each is computed from the interactions
`FeatureEncoder.fit` is given, the training part only, and kept in the encoder by raw id, so a
saved encoder scores without the data it was fitted on.

An example never sees its own label through these fields:

- statistics: `FeatureEncoder.encode(part, leave_out=True)` says that `part` holds the fitted
  log's own interactions; each then leaves its own rating out of its user's and its item's
  statistics. Without that, a training example of an item rated 3 times would carry a third of
  its own label in the item's mean, which no held-out pair does, and the model would learn to
  trust the mean of rarely rated items far more than it should.
- history: a pair's bag never holds the pair's own item. For a training pair (u, i), i is in
  u's "liked" bag exactly when its label is 1; a held-out pair's item is never in the bag, so
  leaving the own item out makes training examples look like the pairs that are scored.
"""

from __future__ import annotations

import numpy as np

from shortrec_jax.data.dataset import DataError, Dataset
from shortrec_jax.data.fields import FieldSpec
from shortrec_jax.data.fitted_fields import FittedField, local_ids, sorted_vocabulary


def statistic_side(f: FieldSpec) -> str:
    """ "user" or "item": whose interactions a statistic counts."""
    return f.source.split("_", 1)[0]


def quantity(f: FieldSpec, ratings: np.ndarray) -> np.ndarray:
    """[N] float64, what each rating adds to a statistic's sum (a count's sum is unused)."""
    r = np.asarray(ratings, np.float64)
    if f.source.endswith("_like_share"):
        return (r >= f.threshold).astype(np.float64)
    return r


def statistic_values(fld: FittedField, counts: np.ndarray, sums: np.ndarray) -> np.ndarray:
    """[N] float64 values of a statistic from its interactions' count and sum ([N] each).

    A count is log(1 + n); a mean or share is (sum + prior * g) / (n + prior), g the training
    log's global value, and g itself where n + prior is 0 (an unseen user or item, no prior).
    """
    if fld.spec.source.endswith("_count"):
        return np.log1p(counts)
    prior, g = fld.spec.prior, fld.global_value
    denom = counts + prior
    return np.where(denom > 0, (sums + prior * g) / np.maximum(denom, 1e-12), g)


def fit_statistic(train: Dataset, f: FieldSpec) -> FittedField:
    """Per-user or per-item counts and sums of one statistic, and its scaling (the mean and
    std, or the bucket edges, of the values of the training interactions, each left out of
    its own statistic as `encode(train, leave_out=True)` encodes them)."""
    side = statistic_side(f)
    index = train.users if side == "user" else train.items
    raw = (train.user_ids if side == "user" else train.item_ids).astype(np.str_)
    q = quantity(f, train.ratings)
    present, inverse = np.unique(index, return_inverse=True)
    keys = raw[present]
    order = np.argsort(keys, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    counts = np.bincount(rank[inverse], minlength=keys.size).astype(np.float64)
    sums = np.bincount(rank[inverse], weights=q, minlength=keys.size)
    fld = FittedField(
        f,
        side=side,
        keys=keys[order],
        counts=counts,
        sums=sums,
        global_value=float(q.mean()) if q.size else 0.0,
    )
    own = rank[inverse]
    x = statistic_values(fld, counts[own] - 1.0, sums[own] - q)
    if f.buckets:
        qs = np.linspace(0.0, 1.0, f.buckets + 1)[1:-1]
        fld.edges = np.unique(np.quantile(x, qs)) if x.size else np.zeros(0)
        fld.size = fld.edges.size + 2
        return fld
    std = float(x.std()) if x.size else 0.0
    fld.mean = float(x.mean()) if x.size else 0.0
    fld.std = std if std > 0 else 1.0
    return fld


def statistic_rows(fld: FittedField, ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """([R + 1] counts, [R + 1] sums) float64 of the users (or items) of `ds`, R their number;
    zeros for one the log never saw and for the last row, the unknown user or item."""
    raw = ds.user_ids if fld.side == "user" else ds.item_ids
    local = local_ids(fld.keys, raw.astype(np.str_))
    counts = np.r_[0.0, fld.counts][local]
    sums = np.r_[0.0, fld.sums][local]
    return np.r_[counts, 0.0], np.r_[sums, 0.0]


def scale_statistic(fld: FittedField, values: np.ndarray) -> np.ndarray:
    """A statistic's encoded column: [N] float32 standardised values, or [N] int32 global
    bucket ids."""
    if fld.spec.buckets:
        return (fld.offset + 1 + np.searchsorted(fld.edges, values, side="right")).astype(np.int32)
    return ((values - fld.mean) / fld.std).astype(np.float32)


def fit_history(train: Dataset, f: FieldSpec, vocab: np.ndarray | None = None) -> FittedField:
    """Each training user's bag: their `f.length` most recent items (rated, or liked), most
    recent first.

    Args:
      vocab: [V] sorted raw item ids the bag's local ids refer to (those of the field named
        by `f.ids_of`, which then owns the ids: the history's size is 0); None: the items in
        some bag, a vocabulary of the history's own.
    """
    keep = np.ones(train.num_interactions, dtype=bool)
    if f.source == "liked":
        keep = train.ratings >= f.threshold
    rows = np.flatnonzero(keep)
    # Most recent first within a user; equal times keep the log's order, newest row first.
    rows = rows[np.lexsort((-rows, -train.timestamps[rows], train.users[rows]))]
    users = train.users[rows]
    starts = np.searchsorted(users, users, side="left")
    rows = rows[np.arange(rows.size) - starts < f.length]
    user_raw = train.user_ids.astype(np.str_)
    item_raw = train.item_ids.astype(np.str_)
    own_vocab = vocab is None
    if vocab is None:
        vocab = sorted_vocabulary(item_raw[train.items[rows]])
    keys = user_raw[np.unique(train.users)]
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    # Rows grouped by user in key (raw id string) order, each user's bag kept in its order.
    rank = local_ids(keys, user_raw[train.users[rows]]) - 1
    rows = rows[np.argsort(rank, kind="stable")]
    counts = np.bincount(rank, minlength=keys.size)
    offsets = np.r_[0, np.cumsum(counts)].astype(np.int64)
    bag = local_ids(vocab, item_raw[train.items[rows]]).astype(np.int32)
    return FittedField(
        f,
        side="user",
        size=vocab.size + 1 if own_vocab else 0,
        vocab=vocab,
        keys=keys,
        offsets=offsets,
        bag=bag,
        multi_len=max(1, int(counts.max(initial=0))),
    )


def history_rows(
    fld: FittedField, ds: Dataset, length: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The bags of the users of `ds` and the bag ids of its items.

    Returns:
      ([U + 1, L] int32 global ids, [U + 1, L] float32 mask, [I + 1] int32 the global id of
      each item in the bag vocabulary, -1 for an item no bag holds); the last rows are the
      unknown user (an empty bag) and the unknown item.
    """
    if fld.offsets is None or fld.bag is None or fld.keys is None:
        raise DataError(f"field {fld.spec.name!r} is not a fitted history")
    nu = ds.num_users
    key = local_ids(fld.keys, ds.user_ids.astype(np.str_))  # [U], 0 = not in the log
    starts = np.where(key > 0, fld.offsets[np.maximum(key - 1, 0)], 0)
    lengths = np.where(key > 0, np.diff(fld.offsets)[np.maximum(key - 1, 0)], 0)
    lengths = np.minimum(lengths, length)
    users = np.repeat(np.arange(nu), lengths)
    slot = np.arange(users.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    ids = np.full((nu + 1, length), fld.offset, dtype=np.int32)
    mask = np.zeros((nu + 1, length), dtype=np.float32)
    ids[users, slot] = fld.offset + fld.bag[np.repeat(starts, lengths) + slot]
    mask[users, slot] = 1.0
    item = local_ids(fld.vocab, ds.item_ids.astype(np.str_))
    own = np.r_[np.where(item > 0, fld.offset + item, -1), -1].astype(np.int32)
    return ids, mask, own
