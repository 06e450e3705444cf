"""Train / validation / test splits of a `Dataset`, and training-set subsamples.

Every split keeps the vocabularies and side information of the source whole (it is built
with `Dataset.take`), so indices stay comparable between the parts, and every part lists its
interactions in the source's file order. Random choices come from
`np.random.default_rng(seed)`, so a (data set, protocol, seed) triple always gives the same
parts.

Part sizes. Given fractions (f_train, [f_valid,] f_test) that sum to 1 and a count n (all
interactions, or one user's), each part after the first gets `floor(f * n)` interactions
(computed with a 1e-9 tolerance, so that 0.29 of 100 is 29 and not 28 through float error) and
the training part gets the rest. MovieLens 100K under the study's 80/20 split is therefore
exactly 80,000 / 20,000 interactions.

Protocols:
  `random_split`          the study's split: a random fraction of all interactions per part.
  `per_user_random_split` the same within each user (RecBole's top-K protocol), so every user
                          with enough interactions appears in every part.
  `temporal_split`        one global time cut: the earliest interactions train, the latest test.
  `leave_one_out`         per user by time: the last interaction tests, the one before it
                          validates (the sequential-model protocol of BERT4Rec).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from shortrec_jax.data.dataset import DataError, Dataset

# Absorbs float error in fraction * count before the floor (0.29 * 100 = 28.999999999999996).
_SIZE_TOLERANCE = 1e-9


@dataclasses.dataclass(frozen=True)
class ColdStart:
    """Users and items of one evaluation part that never appear in the training part.

    Attributes:
      users: distinct users of the part with no training interaction.
      items: distinct items of the part with no training interaction.
      interactions: interactions of the part whose user or item is cold.
    """

    users: int
    items: int
    interactions: int


def cold_start(train: Dataset, part: Dataset) -> ColdStart:
    """Counts the users, items and interactions of `part` that training never saw."""
    seen_users = np.zeros(train.num_users, dtype=bool)
    seen_users[train.users] = True
    seen_items = np.zeros(train.num_items, dtype=bool)
    seen_items[train.items] = True
    cold_user = ~seen_users[part.users]
    cold_item = ~seen_items[part.items]
    return ColdStart(
        users=int(np.unique(part.users[cold_user]).size),
        items=int(np.unique(part.items[cold_item]).size),
        interactions=int(np.count_nonzero(cold_user | cold_item)),
    )


@dataclasses.dataclass(frozen=True, eq=False)
class Split:
    """The parts of one split, with its cold-start report.

    Attributes:
      train: the training interactions.
      valid: the validation interactions, or None for a two-way split.
      test: the test interactions.
      protocol: how the split was made, e.g. "random 0.8/0.2, seed 0" (for logs).
      report: cold-start counts against `train`, keyed "valid" (when present) and "test";
        computed on construction.
    """

    train: Dataset
    valid: Dataset | None
    test: Dataset
    protocol: str = ""
    report: Mapping[str, ColdStart] = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        parts = {"valid": self.valid, "test": self.test}
        report = {k: cold_start(self.train, v) for k, v in parts.items() if v is not None}
        object.__setattr__(self, "report", report)

    def parts(self) -> dict[str, Dataset]:
        """The non-empty parts by name, in the order train, valid, test."""
        parts = {"train": self.train, "valid": self.valid, "test": self.test}
        return {k: v for k, v in parts.items() if v is not None}

    def describe(self) -> str:
        """A few lines with the size of each part and its cold-start counts, for logs."""
        lines = [f"{self.protocol or 'split'} of {self.train.name}"]
        for name, part in self.parts().items():
            users = np.unique(part.users).size
            items = np.unique(part.items).size
            line = (
                f"  {name:<5} {part.num_interactions:>10,} interactions, {users:,} users, "
                f"{items:,} items"
            )
            cold = self.report.get(name)
            if cold is not None:
                line += (
                    f"; cold start: {cold.users:,} users, {cold.items:,} items "
                    f"({cold.interactions:,} interactions)"
                )
            lines.append(line)
        return "\n".join(lines)


def concat(parts: Sequence[Dataset]) -> Dataset:
    """The interactions of several parts of one split, part after part.

    Used to rebuild "train + valid" (the history a test prediction may use). Extra columns are
    kept when every part has them.

    Args:
      parts: parts of the same source (same user and item vocabularies).

    Returns:
      A data set with the interactions of `parts[0]`, then `parts[1]`, ...
    """
    if not parts:
        raise ValueError("concat needs at least one part")
    first = parts[0]
    for p in parts[1:]:
        if p.num_users != first.num_users or p.num_items != first.num_items:
            raise DataError(
                f"cannot concatenate parts with different vocabularies: "
                f"{first.num_users}x{first.num_items} and {p.num_users}x{p.num_items} "
                "(users x items)"
            )
    shared_extra = set(first.extra).intersection(*(p.extra for p in parts[1:]))
    return dataclasses.replace(
        first,
        users=np.concatenate([p.users for p in parts]),
        items=np.concatenate([p.items for p in parts]),
        ratings=np.concatenate([p.ratings for p in parts]),
        timestamps=np.concatenate([p.timestamps for p in parts]),
        extra={k: np.concatenate([p.extra[k] for p in parts]) for k in sorted(shared_extra)},
    )


def _check_fractions(fractions: Sequence[float]) -> tuple[float, ...]:
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) not in (2, 3) or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(
            f"fractions must be 2 or 3 positive numbers (train, [valid,] test) that sum to 1, "
            f"got {fractions}"
        )
    return fractions


def _tail_sizes(counts: np.ndarray, fractions: tuple[float, ...]) -> np.ndarray:
    """floor(f * n) for each part after the first: [P - 1, *counts.shape] int64."""
    f = np.asarray(fractions[1:], dtype=np.float64).reshape(-1, *([1] * counts.ndim))
    return np.floor(f * counts + _SIZE_TOLERANCE).astype(np.int64)


def _from_rank(
    ds: Dataset, rank: np.ndarray, bounds: np.ndarray, protocol: str, three_way: bool
) -> Split:
    """Assigns each interaction to a part by its rank against per-interaction bounds.

    Args:
      rank: [N] position of each interaction in its group's order (0 = first to train).
      bounds: [P - 1, N] exclusive end rank of each part but the last.
    """
    part = (rank[None, :] >= bounds).sum(axis=0)  # [N] 0 = train, 1 = valid/test, 2 = test
    train = ds.take(np.flatnonzero(part == 0))
    if three_way:
        return Split(
            train, ds.take(np.flatnonzero(part == 1)), ds.take(np.flatnonzero(part == 2)), protocol
        )
    return Split(train, None, ds.take(np.flatnonzero(part == 1)), protocol)


def _global_split(
    ds: Dataset, order: np.ndarray, fractions: tuple[float, ...], protocol: str
) -> Split:
    n = ds.num_interactions
    tail = _tail_sizes(np.asarray(n), fractions)  # [P - 1]
    ends = n - np.cumsum(tail[::-1])[::-1]  # exclusive end of train, [and of valid]
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    return _from_rank(ds, rank, ends[:, None], protocol, len(fractions) == 3)


def random_split(ds: Dataset, fractions: Sequence[float] = (0.8, 0.2), *, seed: int) -> Split:
    """Splits the interactions at random (the study's 80/20 protocol).

    Args:
      ds: the interactions to split.
      fractions: (train, test) or (train, valid, test), summing to 1. Sizes as in the module
        docstring: each later part gets floor(f * N), train the rest.
      seed: seeds `np.random.default_rng`.

    Returns:
      The split; users or items may appear only outside training (see `Split.report`).
    """
    fractions = _check_fractions(fractions)
    order = np.random.default_rng(seed).permutation(ds.num_interactions)
    shares = "/".join(f"{f:g}" for f in fractions)
    return _global_split(ds, order, fractions, f"random {shares}, seed {seed}")


def temporal_split(ds: Dataset, fractions: Sequence[float] = (0.8, 0.2)) -> Split:
    """Splits at one global time cut: the earliest interactions train, the latest test.

    Interactions are ordered by timestamp, ties by file order, and cut at the sizes of the
    module docstring, so interactions that share the timestamp of a cut may fall on both sides
    of it (the sizes stay exact).

    Args:
      ds: the interactions to split.
      fractions: (train, test) or (train, valid, test), summing to 1.
    """
    fractions = _check_fractions(fractions)
    order = np.lexsort((np.arange(ds.num_interactions), ds.timestamps))
    shares = "/".join(f"{f:g}" for f in fractions)
    return _global_split(ds, order, fractions, f"temporal {shares}")


def _group_rank(users: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rank of each interaction within its user, given an order that sorts by user first.

    Args:
      users: [N] user index of each interaction.
      order: [N] a permutation with `users[order]` non-decreasing.

    Returns:
      (rank [N] int64: position among the user's interactions in `order`,
       count [N] int64: the user's number of interactions), both per interaction.
    """
    n = users.size
    sorted_users = users[order]
    starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
    sizes = np.diff(np.r_[starts, n])
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - np.repeat(starts, sizes)
    count = np.empty(n, dtype=np.int64)
    count[order] = np.repeat(sizes, sizes)
    return rank, count


def per_user_random_split(
    ds: Dataset, fractions: Sequence[float] = (0.8, 0.2), *, seed: int
) -> Split:
    """Splits each user's interactions at random (RecBole's "RS" split grouped by user).

    For a user with n interactions each later part gets floor(f * n) of them and training the
    rest; then, as RecBole does, a later part that got none although f * n > 0 takes one
    interaction from training while training keeps more than one (test first, then valid).
    So a user with 2 interactions under 80/20 has one in each part, and a user with 3 under
    80/10/10 has one in each of the three; a user with a single interaction stays in training.

    Args:
      ds: the interactions to split.
      fractions: (train, test) or (train, valid, test), summing to 1.
      seed: seeds `np.random.default_rng`; shuffles within each user.
    """
    fractions = _check_fractions(fractions)
    n = ds.num_interactions
    keys = np.random.default_rng(seed).random(n)
    order = np.lexsort((keys, ds.users))  # by user, then in random order
    rank, count = _group_rank(ds.users, order)
    tail = _tail_sizes(count, fractions)  # [P - 1, N], per interaction (constant per user)
    train_size = count - tail.sum(axis=0)
    for p in range(tail.shape[0] - 1, -1, -1):  # the last part first, as RecBole
        exact = fractions[p + 1] * count
        bump = (train_size > 1) & (exact > 0) & (exact < 1)
        tail[p] += bump
        train_size -= bump
    bounds = train_size[None, :] + np.cumsum(tail, axis=0)[:-1]
    bounds = np.concatenate([train_size[None, :], bounds], axis=0)
    shares = "/".join(f"{f:g}" for f in fractions)
    return _from_rank(
        ds, rank, bounds, f"per-user random {shares}, seed {seed}", len(fractions) == 3
    )


def leave_one_out(ds: Dataset, *, with_valid: bool = True) -> Split:
    """Holds out each user's last interaction for test and the one before it for validation.

    "Last" is by timestamp, ties broken by file order (the later row is later). Users with
    fewer than 3 interactions (2 when `with_valid` is False) stay whole in training, so every
    evaluated user keeps at least one training interaction.

    Args:
      ds: the interactions to split.
      with_valid: hold out a validation interaction too; False gives a (train, test) split.
    """
    n = ds.num_interactions
    order = np.lexsort((np.arange(n), ds.timestamps, ds.users))
    rank, count = _group_rank(ds.users, order)
    held = 2 if with_valid else 1
    # The last `held` interactions of an eligible user leave training, one per later part; an
    # ineligible user's bounds lie past its last rank, so all of its interactions train.
    train_size = np.where(count > held, count - held, count)
    bounds = train_size[None, :] + np.arange(held)[:, None]  # [held, N]
    return _from_rank(ds, rank, bounds, "leave-one-out by time", with_valid)


def subsample(ds: Dataset, fraction: float, *, seed: int) -> Dataset:
    """A seeded random fraction of the interactions (the data-set-size experiment).

    Keeps floor(fraction * N) interactions (1e-9 tolerance), in file order. For one seed the
    subsamples are nested: a larger fraction keeps every interaction a smaller one keeps, so a
    precision-vs-size curve adds data rather than redrawing it.

    Args:
      ds: usually the training part of a split.
      fraction: in (0, 1].
      seed: seeds `np.random.default_rng`.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    n = ds.num_interactions
    size = int(np.floor(fraction * n + _SIZE_TOLERANCE))
    keep = np.random.default_rng(seed).permutation(n)[:size]
    return ds.take(np.sort(keep))


# Split protocols by the name a config uses; each takes (ds, **options).
SPLITS: dict[str, Callable[..., Split]] = {
    "random": random_split,
    "per_user_random": per_user_random_split,
    "temporal": temporal_split,
    "leave_one_out": leave_one_out,
}


def make_split(ds: Dataset, protocol: str, **options: Any) -> Split:
    """Splits by protocol name (a key of `SPLITS`) with that protocol's keyword options."""
    if protocol not in SPLITS:
        raise ValueError(f"unknown split protocol {protocol!r}; expected one of {sorted(SPLITS)}")
    return SPLITS[protocol](ds, **options)
