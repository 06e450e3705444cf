"""Turning raw columns into a `Dataset`: id indexing, rating checks and the duplicate policy.

Every loader parses its own file format into raw columns and hands them to
`build_dataset`, so that indexing, validation and the duplicate policy are written once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from shortrec_jax.data.dataset import DataError, Dataset

# What to do with several interactions of one user with one item:
#   "last"  keep the latest by timestamp (ties: the later row) -- the default, because a
#           re-rating replaces the earlier opinion and a split must not hold the same pair twice;
#   "first" keep the earliest; "mean" one row with the mean rating and the latest timestamp;
#   "keep"  keep every row (logs of repeated views); "error" stop, naming the first duplicate.
DUPLICATE_POLICIES = ("last", "first", "mean", "keep", "error")

# Side information is built once the vocabularies are known: a builder takes
# (user_ids [U] str, item_ids [I] str) and returns `Dataset` fields (user_features, ...).
SideBuilder = Callable[[np.ndarray, np.ndarray], Mapping[str, Any]]


def index_by_first_appearance(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maps raw ids to contiguous indices in order of first appearance.

    Args:
      raw: [N] raw ids (any dtype numpy can sort).

    Returns:
      (indices [N] int32, vocabulary [V] str) with `vocabulary[indices] == raw` as strings.
    """
    uniq, first, inverse = np.unique(raw, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # unique position -> rank of first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return rank[inverse].astype(np.int32), uniq[order].astype(np.str_)


def parse_float_column(
    values: Sequence[str], *, source: str, column: str, line_numbers: Sequence[int]
) -> np.ndarray:
    """Parses strings as float64, naming the file, line and column of the first bad value.

    Args:
      values: [N] strings; `values[i]` is on line `line_numbers[i]` of `source`.

    Returns:
      [N] float64.
    """
    try:
        return np.asarray(values, dtype=np.float64)
    except ValueError:
        for i, v in enumerate(values):
            try:
                float(v)
            except ValueError:
                raise DataError(
                    f"{source}, line {line_numbers[i]}: column {column!r} must be a number, "
                    f"got {str(v)!r}"
                ) from None
        raise


def apply_duplicate_policy(
    users: np.ndarray,
    items: np.ndarray,
    ratings: np.ndarray,
    timestamps: np.ndarray,
    policy: str,
    *,
    source: str,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Chooses the rows to keep under a duplicate policy.

    Args:
      users, items: [N] int indices; ratings [N] float; timestamps [N] int.

    Returns:
      (rows [M] int64 to keep, in their original order; ratings [M] to use instead of
      `ratings[rows]` for the "mean" policy, else None).
    """
    if policy not in DUPLICATE_POLICIES:
        raise DataError(f"duplicates={policy!r} is not one of {DUPLICATE_POLICIES}")
    n = users.shape[0]
    if policy == "keep" or n == 0:
        return np.arange(n), None
    key = users.astype(np.int64) * (int(items.max()) + 1) + items.astype(np.int64)
    # Sort by pair, then time, then row, so the last row of each group is the latest one.
    order = np.lexsort((np.arange(n), timestamps, key))
    sorted_key = key[order]
    starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
    if starts.size == n:
        return np.arange(n), None
    if policy == "error":
        dup = order[starts[np.flatnonzero(np.diff(np.r_[starts, n]) > 1)[0]]]
        raise DataError(
            f"{source}: user {users[dup]} and item {items[dup]} (indices) interact more than "
            "once; choose duplicates='last', 'first', 'mean' or 'keep'"
        )
    ends = np.r_[starts[1:], n] - 1
    if policy == "first":
        return np.sort(order[starts]), None
    keep = order[ends]
    if policy == "last":
        return np.sort(keep), None
    sums = np.add.reduceat(ratings[order].astype(np.float64), starts)
    means = (sums / (ends - starts + 1)).astype(np.float32)
    perm = np.argsort(keep)
    return keep[perm], means[perm]


def build_dataset(
    name: str,
    raw_users: np.ndarray,
    raw_items: np.ndarray,
    ratings: np.ndarray,
    timestamps: np.ndarray | None = None,
    *,
    source: str,
    duplicates: str = "last",
    rating_range: tuple[float, float] | None = None,
    extra_item_ids: Sequence[str] = (),
    user_ids: np.ndarray | None = None,
    item_ids: np.ndarray | None = None,
    first_line: int = 2,
    line_numbers: np.ndarray | None = None,
    extra: Mapping[str, np.ndarray] | None = None,
    dropped: Mapping[str, int] | None = None,
    side: Sequence[SideBuilder] = (),
) -> Dataset:
    """Indexes raw interaction columns and returns a validated `Dataset`.

    Args:
      name: the data set's name.
      raw_users, raw_items: [N] raw ids (str or int).
      ratings: [N] float ratings; NaN or outside `rating_range` is an error naming the line.
      timestamps: [N] int unix seconds, or None (all 0).
      source: file name used in error messages.
      duplicates: one of DUPLICATE_POLICIES.
      rating_range: inclusive (low, high), checked when given.
      extra_item_ids: raw ids of items with side information but no interaction; they get
        indices after every interacted item, in the given order.
      user_ids, item_ids: fixed vocabularies to use instead of first appearance; an id outside
        them is an error naming the line.
      first_line: the file line of row 0, for messages (2 after a header row).
      line_numbers: [N] int, the file line of each row, for messages; use it instead of
        `first_line` when rows are not consecutive lines (blank lines, rows already dropped).
      extra: per-interaction extra columns, [N] each.
      dropped: counts of rows the caller already dropped, by reason.
      side: builders of the remaining `Dataset` fields (user_features, item_multi_hot, ...),
        called with the final vocabularies; they align their rows with `vocab_lookup`.

    Returns:
      The data set; interactions keep the file order, minus dropped duplicates.
    """
    ratings = np.asarray(ratings, dtype=np.float64)
    n = ratings.shape[0]
    lines = _Lines(first_line, line_numbers)
    # Ratings are kept as float32: a finite float64 beyond its range would become inf.
    bad = ~(np.abs(ratings) <= np.finfo(np.float32).max)
    if rating_range is not None:
        low, high = rating_range
        bad |= (ratings < low) | (ratings > high)
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        if rating_range:
            expected = f"in [{rating_range[0]:g}, {rating_range[1]:g}]"
        else:
            expected = "within the float32 range" if np.isfinite(ratings[i]) else "finite"
        raise DataError(
            f"{source}, line {lines(i)}: rating must be {expected}, got {float(ratings[i]):g}"
        )
    if timestamps is None:
        timestamps = np.zeros(n, dtype=np.int64)
    timestamps = np.asarray(timestamps)
    if timestamps.dtype.kind == "f":
        # A float at or beyond 2**63 would wrap silently in the cast to int64.
        bad = ~(np.abs(timestamps) < 2.0**63)
        if np.any(bad):
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{source}, line {lines(i)}: timestamp must be finite unix seconds within "
                f"int64, got {timestamps[i]:g}"
            )
        timestamps = timestamps.astype(np.int64)
    timestamps = timestamps.astype(np.int64)

    users, user_vocab = _index(raw_users, user_ids, source, "user", lines)
    items, item_vocab = _index(raw_items, item_ids, source, "item", lines)
    if item_ids is None and len(extra_item_ids):
        known = set(item_vocab.tolist())
        more = [str(i) for i in extra_item_ids if str(i) not in known]
        item_vocab = np.concatenate([item_vocab, np.asarray(more, dtype=np.str_)])

    rows, mean_ratings = apply_duplicate_policy(
        users, items, ratings, timestamps, duplicates, source=source
    )
    dropped = dict(dropped or {})
    if rows.size < n:
        dropped[f"duplicate interactions (duplicates={duplicates!r})"] = n - rows.size
    kept_ratings = mean_ratings if mean_ratings is not None else ratings[rows]
    extra = {k: np.asarray(v)[rows] for k, v in (extra or {}).items()}
    fields: dict[str, Any] = {}
    for builder in side:
        fields.update(builder(user_vocab, item_vocab))
    return Dataset(
        name=name,
        users=users[rows],
        items=items[rows],
        ratings=kept_ratings.astype(np.float32),
        timestamps=timestamps[rows],
        user_ids=user_vocab,
        item_ids=item_vocab,
        extra=extra,
        dropped=dropped,
        **fields,
    )


class _Lines:
    """The file line of a row, computed only for an error message."""

    def __init__(self, first_line: int, line_numbers: np.ndarray | None) -> None:
        self.first_line, self.line_numbers = first_line, line_numbers

    def __call__(self, i: int) -> int:
        if self.line_numbers is None:
            return self.first_line + i
        return int(self.line_numbers[i])


def _index(
    raw: np.ndarray, vocab: np.ndarray | None, source: str, what: str, lines: _Lines
) -> tuple[np.ndarray, np.ndarray]:
    raw = np.asarray(raw)
    if vocab is None:
        if raw.dtype.kind in "iu":
            # Integer ids sort several times faster than their strings (25M ratings of ml-25m);
            # the vocabulary comes out as strings either way.
            return index_by_first_appearance(raw)
        raw = raw.astype(np.str_)
        # An empty id is a truncated or misaligned row, never a user or item of its own.
        empty = raw == ""
        if np.any(empty):
            i = int(np.flatnonzero(empty)[0])
            raise DataError(f"{source}, line {lines(i)}: empty {what} id")
        return index_by_first_appearance(raw)
    raw = raw.astype(np.str_)
    vocab = np.asarray(vocab).astype(np.str_)
    table = {v: i for i, v in enumerate(vocab.tolist())}
    idx = np.fromiter((table.get(r, -1) for r in raw.tolist()), dtype=np.int64, count=raw.size)
    if np.any(idx < 0):
        i = int(np.flatnonzero(idx < 0)[0])
        raise DataError(f"{source}, line {lines(i)}: unknown {what} id {raw[i]!r}")
    return idx.astype(np.int32), vocab


def vocab_lookup(
    vocab: np.ndarray, raw_ids: np.ndarray, values: np.ndarray, fill: Any
) -> np.ndarray:
    """Aligns a side-information column to a vocabulary.

    Args:
      vocab: [V] str, the index order (e.g. `Dataset.item_ids`).
      raw_ids: [R] raw ids of the side-information rows.
      values: [R, ...] the column.
      fill: the value for vocabulary entries with no row.

    Returns:
      [V, ...] the column in vocabulary order; rows whose id is not in `vocab` are ignored
      (a user file may describe users who never rated anything).
    """
    table = {v: i for i, v in enumerate(np.asarray(vocab).astype(np.str_).tolist())}
    pos = np.fromiter(
        (table.get(r, -1) for r in np.asarray(raw_ids).astype(np.str_).tolist()),
        dtype=np.int64,
        count=len(raw_ids),
    )
    values = np.asarray(values)
    out = np.full((len(vocab), *values.shape[1:]), fill, dtype=values.dtype)
    known = pos >= 0
    out[pos[known]] = values[known]
    return out
