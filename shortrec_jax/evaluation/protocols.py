"""Evaluation protocols: every method trained and scored on the same splits and seeds.

Each protocol function takes a method factory, a `Dataset`, the methods to compare (name ->
hyperparameters), the seeds and its options, and returns plain dicts of numbers:

  `paper_protocol`         the study's section 3 (its Fig. 6): random 80/20 split by
                           interaction; each user ranks only their own held-out items;
                           precision@N (accurate = rated >= 4) for N = 1..max_n.
  `size_protocol`          the same precision@N when the methods train on 10%, 20%, ... of the
                           training part (the study's Fig. 7; nested subsamples).
  `full_ranking_protocol`  per-user random split; each user ranks every item outside their
                           history; Precision/Recall/NDCG/HR/MRR/MAP at K (RecBole's top-K).
  `leave_one_out_protocol` each user's last interaction by time; HR/NDCG/MRR at K over the full
                           catalogue, and optionally against sampled negatives (BERT4Rec paper).
  `ctr_protocol`           AUC, LogLoss and per-user AUC on labelled pairs of a random split.

Every ranking protocol also reports, per repeat:
  beyond accuracy  on each user's top-K list (K in `beyond_ks`): catalogue coverage, novelty,
                   intra-list diversity of `diversity_feature` vectors (genres), long-tail share
                   (see `metrics.py`); keys "coverage@K", "novelty@K", "diversity@K",
                   "long_tail@K". The lists break ties with `interface.top_k` (lower column
                   first); the accuracy metrics resolve ties in expectation instead.
  cold users       the accuracy metrics over users with at most `cold_user_max_ratings`
                   training interactions; keys "cold_users/<metric>".
  rare items       the long tail: items outside the popular head, i.e. outside the
                   `head_fraction` (20%) of the catalogue with the most training interactions
                   (`metrics.head_items`, the same split as the long-tail share). Keys
                   "rare_items/<metric>"; what is measured depends on the protocol (see each).
  counts           "users" evaluated, and "<slice>/users" per slice.

Results. A protocol returns {"protocol", "options", "seeds", "dataset", "methods"}, where
methods[name] = {"mean": {metric: value}, "std": {metric: value}, "repeats": {seed: {metric:
value}}} (the size protocol nests this once more under "fractions"). The standard deviation is
the sample one (n - 1) over repeats, 0 for a single repeat; NaN metrics (an empty slice) are
left out of both and shown as None when none is left. Every repeat also records
"time/fit_seconds" and "time/eval_seconds".

Methods and seeds. `make_method(name, config, seed=, workdir=)` builds an unfitted `Method`
for one repeat; the protocol fits it on that repeat's training part (with the validation part
where the protocol has one, else None). Repeat r of a run uses seeds[r] for the split, for the
method (the factory decides how: e.g. initialisation, the random ranker's hash) and for
sampled negatives, so every method of a repeat sees the same split.

Restarts. Given a `store`, a repeat whose result is stored under the same key and fingerprint
(protocol, options, data, method config, seed, fraction) is not recomputed; results are
stored as soon as each repeat finishes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm.auto import tqdm

from shortrec_jax.data.dataset import Dataset
from shortrec_jax.data.splits import (
    Split,
    concat,
    leave_one_out,
    per_user_random_split,
    random_split,
    subsample,
)
from shortrec_jax.evaluation import metrics
from shortrec_jax.interface import Method, seen_matrix_rows, top_k

Numbers = dict[str, float]


class MethodFactory(Protocol):
    """Builds an unfitted method for one repeat.

    Args:
      name: the method's name, e.g. "item-cf", "xdeepfm", "random".
      config: its hyperparameters (config.methods.<name> of an evaluate config).
      seed: the repeat's seed.
      workdir: a folder the method may use for this repeat (checkpoints), or None.
    """

    def __call__(
        self, name: str, config: Mapping[str, Any], *, seed: int, workdir: Path | None
    ) -> Method: ...


class Store(Protocol):
    """Where finished repeats are kept across restarts (see `report.RepeatStore`)."""

    def get(self, key: str, fingerprint: str) -> Numbers | None:
        """The stored result of `key`, or None if absent or stored under another fingerprint."""

    def put(self, key: str, fingerprint: str, result: Numbers) -> None:
        """Stores (durably) the result of `key`."""


# -- training statistics shared by the slices and beyond-accuracy metrics ---------------------


@dataclasses.dataclass(frozen=True)
class TrainStats:
    """What the slices and beyond-accuracy metrics need to know about a training part.

    Attributes:
      user_counts: [U] training interactions per user.
      item_users: [I] distinct training users per item (novelty).
      num_users: users with at least one training interaction.
      head: [I] bool, the popular head (`metrics.head_items`); the rest is the long tail.
      features: [I, F] item feature vectors for diversity, or None.
    """

    user_counts: np.ndarray
    item_users: np.ndarray
    num_users: int
    head: np.ndarray
    features: np.ndarray | None

    @classmethod
    def of(cls, train: Dataset, head_fraction: float, diversity_feature: str | None) -> TrainStats:
        """The statistics of `train`; `diversity_feature` as in `item_feature_matrix`."""
        pairs = np.unique(train.users.astype(np.int64) * train.num_items + train.items)
        return cls(
            user_counts=np.bincount(train.users, minlength=train.num_users),
            item_users=np.bincount(pairs % train.num_items, minlength=train.num_items),
            num_users=int(np.unique(train.users).size),
            head=metrics.head_items(
                np.bincount(train.items, minlength=train.num_items), head_fraction
            ),
            features=None
            if diversity_feature is None
            else item_feature_matrix(train, diversity_feature),
        )


def item_feature_matrix(ds: Dataset, feature: str) -> np.ndarray:
    """Item vectors for diversity: a multi-hot column (e.g. "genres") or "vectors".

    Args:
      ds: the data set.
      feature: the name of a multi-hot item column, or "vectors" for `ds.item_vectors`.

    Returns:
      [I, F] float32 (a multi-hot column gives one 0/1 column per distinct value).
    """
    if feature == "vectors":
        if ds.item_vectors is None:
            raise ValueError(f"diversity_feature='vectors' but {ds.name} has no item vectors")
        return ds.item_vectors
    if feature not in ds.item_multi_hot:
        raise ValueError(
            f"diversity_feature={feature!r} is not a multi-hot item column of {ds.name}; "
            f"expected 'vectors' or one of {sorted(ds.item_multi_hot)}"
        )
    column = ds.item_multi_hot[feature]
    vocab, codes = np.unique(column.values, return_inverse=True)
    out = np.zeros((len(column), vocab.size), np.float32)
    out[column.row_ids(), codes] = 1.0
    return out


def beyond_accuracy(lists: np.ndarray, stats: TrainStats, ks: Sequence[int]) -> Numbers:
    """Coverage, novelty, diversity and long-tail share of the first K slots of each list.

    Args:
      lists: [U, L] int item indices, best first, -1 = empty slot; L >= max(ks).
      stats: statistics of the training part.
      ks: list lengths.

    Returns:
      {"coverage@K", "novelty@K", "long_tail@K"} and "diversity@K" when `stats` has features.
    """
    out: Numbers = {}
    num_items = stats.head.size
    for k in ks:
        top = lists[:, :k]
        out[f"coverage@{k}"] = metrics.catalogue_coverage(top, num_items)
        out[f"novelty@{k}"] = metrics.novelty(top, stats.item_users, max(stats.num_users, 1))
        if stats.features is not None:
            out[f"diversity@{k}"] = metrics.intra_list_diversity(top, stats.features)
        out[f"long_tail@{k}"] = metrics.long_tail_share(top, stats.head)
    return out


# -- candidates and scoring -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Candidates:
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
    def of(cls, part: Dataset) -> Candidates:
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


def score_candidates(method: Method, cands: Candidates, batch_size: int) -> np.ndarray:
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


def _scatter(part: Dataset, users: np.ndarray, num_items: int) -> np.ndarray:
    """[B, I] bool, True where user users[b] has an interaction with the item in `part`."""
    out = np.zeros((users.size, num_items), bool)
    rows, items = seen_matrix_rows(part, users)
    out[rows, items] = True
    return out


def _lists(scores: np.ndarray, mask: np.ndarray, length: int) -> np.ndarray:
    """The top `length` candidates per row (ties to the lower column), -1 past the candidates.

    Args:
      scores: [B, C]; mask: [B, C] bool, the real candidates; length: L.

    Returns:
      [B, min(L, C)] int64 column indices.
    """
    length = min(length, scores.shape[1])
    cols = top_k(np.where(mask, scores, -np.inf), length)
    return np.where(np.take_along_axis(mask, cols, axis=1), cols, metrics.EMPTY)


def _mean(values: np.ndarray) -> float:
    """Mean over users; NaN for an empty slice."""
    return float(values.mean()) if values.size else float("nan")


def _slice_means(
    per_user: Mapping[str, np.ndarray], rows: np.ndarray | None, prefix: str
) -> Numbers:
    """Means of per-user metrics ([U] each) over the users `rows` ([U] bool; None = all)."""
    if rows is None:
        rows = np.ones(next(iter(per_user.values())).size, bool)
    out = {f"{prefix}{name}": _mean(v[rows]) for name, v in per_user.items()}
    out[f"{prefix}users"] = float(np.count_nonzero(rows))
    return out


def _cutoff_names(values: Mapping[str, np.ndarray], names: Sequence[str]) -> dict[str, np.ndarray]:
    """The entries of `values` whose metric name (before "@") is one of `names`."""
    return {k: v for k, v in values.items() if k.split("@")[0] in names}


# -- one fitted method on one split -----------------------------------------------------------


def evaluate_held_out(
    method: Method,
    train: Dataset,
    test: Dataset,
    *,
    max_n: int,
    threshold: float,
    beyond_ks: Sequence[int],
    cold_user_max_ratings: int,
    head_fraction: float,
    diversity_feature: str | None,
    batch_size: int,
) -> Numbers:
    """The study's measurement: each user ranks only their own held-out items.

    precision@N (N = 1..max_n) is the share of the top min(N, C_u) of user u's C_u held-out
    items rated >= `threshold`, averaged over users with held-out items
    (`metrics.study_precision`). "base_rate" is its expectation for a random order (the share
    of each user's held-out items rated >= threshold, averaged), the line "70%" must be read
    against. Slices: "cold_users/precision@N" over users with few training ratings;
    "rare_items/precision@N" ranks only the long-tail held-out items (users with at least one).
    Beyond accuracy is measured on the top-K held-out items.

    Args:
      method: a fitted method.
      train: what it was fitted on (for the slices and popularity).
      test: the held-out interactions.
      max_n, threshold, beyond_ks, cold_user_max_ratings, head_fraction, diversity_feature,
      batch_size: as in `paper_protocol`.

    Returns:
      Metric name -> value.
    """
    stats = TrainStats.of(train, head_fraction, diversity_feature)
    cands = Candidates.of(test)
    scores = score_candidates(method, cands, batch_size)
    relevant = cands.mask & (cands.ratings >= threshold)
    ns = tuple(range(1, max_n + 1))
    precision = metrics.study_precision(scores, relevant, ns, cands.mask)  # [U, max_n]
    per_user = {f"precision@{n}": precision[:, i] for i, n in enumerate(ns)}
    out = {name: _mean(v) for name, v in per_user.items()}
    out["users"] = float(cands.users.size)
    out["base_rate"] = _mean(relevant.sum(axis=1) / cands.mask.sum(axis=1))
    cold = stats.user_counts[cands.users] <= cold_user_max_ratings
    out.update(_slice_means(per_user, cold, "cold_users/"))
    tail_mask = cands.mask & ~stats.head[cands.items]
    has_tail = tail_mask.any(axis=1)
    tail_precision = metrics.study_precision(
        scores[has_tail], relevant[has_tail], ns, tail_mask[has_tail]
    )
    tail_per_user = {f"precision@{n}": tail_precision[:, i] for i, n in enumerate(ns)}
    out.update(_slice_means(tail_per_user, None, "rare_items/"))
    cols = _lists(scores, cands.mask, max(beyond_ks))
    items = np.where(cols == metrics.EMPTY, metrics.EMPTY, np.take_along_axis(cands.items, cols, 1))
    out.update(beyond_accuracy(items, stats, beyond_ks))
    return out


def evaluate_full_ranking(
    method: Method,
    split: Split,
    *,
    ks: Sequence[int],
    threshold: float | None,
    exclude_valid: bool,
    beyond_ks: Sequence[int],
    cold_user_max_ratings: int,
    head_fraction: float,
    diversity_feature: str | None,
    batch_size: int,
) -> Numbers:
    """Each user ranks every item outside their history; RecBole's top-K metrics.

    History = the user's training items (and validation items when `exclude_valid`); a
    relevant held-out item stays a candidate even if it also appears in the history.
    Relevant = the user's test items rated >= `threshold` (every test item when None);
    only users with a relevant item are evaluated. Slice "rare_items/": only long-tail
    test items count as relevant and relevant head items leave the candidates, so the
    metrics say how well the method finds the relevant rarely rated items (users with one).

    Args:
      method: a fitted method; split: its split (train, valid or None, test);
      the rest as in `full_ranking_protocol`.

    Returns:
      Metric name -> value.
    """
    train, test = split.train, split.test
    stats = TrainStats.of(train, head_fraction, diversity_feature)
    history = train if split.valid is None or not exclude_valid else concat([train, split.valid])
    positives = test if threshold is None else test.take(test.ratings >= threshold)
    users = np.unique(positives.users).astype(np.int64)
    if users.size == 0:
        raise ValueError(f"no test user has a relevant item (threshold={threshold})")
    per_user: dict[str, list[np.ndarray]] = {}
    tail_user: dict[str, list[np.ndarray]] = {}
    lists: list[np.ndarray] = []
    for lo in range(0, users.size, batch_size):
        batch = users[lo : lo + batch_size]
        scores = np.asarray(method.score_all(batch), dtype=np.float64)
        relevant = _scatter(positives, batch, train.num_items)
        mask = ~_scatter(history, batch, train.num_items) | relevant
        for name, v in metrics.ranking_metrics(scores, relevant, ks, mask).items():
            per_user.setdefault(name, []).append(v)
        tail_relevant = relevant & ~stats.head
        tail_rows = tail_relevant.any(axis=1)
        tail_mask = mask & ~(relevant & stats.head)
        tail = metrics.ranking_metrics(
            scores[tail_rows], tail_relevant[tail_rows], ks, tail_mask[tail_rows]
        )
        for name, v in tail.items():
            tail_user.setdefault(name, []).append(v)
        lists.append(_lists(scores, mask, max(beyond_ks)))
    per = {k: np.concatenate(v) for k, v in per_user.items()}
    out = {name: _mean(v) for name, v in per.items()}
    out["users"] = float(users.size)
    cold = stats.user_counts[users] <= cold_user_max_ratings
    out.update(_slice_means(per, cold, "cold_users/"))
    tail_per = {k: np.concatenate(v) for k, v in tail_user.items()}
    out.update(_slice_means(tail_per, None, "rare_items/"))
    out.update(beyond_accuracy(np.concatenate(lists), stats, beyond_ks))
    return out


def sample_negatives(
    history: Dataset,
    users: np.ndarray,
    positives: np.ndarray,
    count: int,
    *,
    popularity: np.ndarray | None,
    rng: np.random.Generator,
    batch_size: int,
) -> np.ndarray:
    """Negatives for each user, without replacement, outside the history and the positive.

    Sampling is proportional to `popularity` (uniform when None) and without replacement
    (the Gumbel top-k trick: the `count` largest log-weight + Gumbel noise), so items with
    popularity 0 are never drawn. The noise is drawn one user row after another from `rng`,
    so the negatives do not depend on `batch_size`.

    Args:
      history: interactions whose items are never negatives for their user (train + valid).
      users: [U] int users; positives: [U] int the held-out item of each.
      count: negatives per user.
      popularity: [I] non-negative weights, or None.
      rng: the generator.
      batch_size: users per chunk.

    Returns:
      [U, count] int64 item indices.
    """
    num_items = history.num_items
    if popularity is None:
        log_weight = np.zeros(num_items)
    else:
        with np.errstate(divide="ignore"):
            log_weight = np.log(np.asarray(popularity, dtype=np.float64))
    out = np.zeros((users.size, count), np.int64)
    for lo in range(0, users.size, batch_size):
        batch = users[lo : lo + batch_size]
        allowed = ~_scatter(history, batch, num_items)
        allowed[np.arange(batch.size), positives[lo : lo + batch_size]] = False
        allowed &= np.isfinite(log_weight)[None, :]
        short = allowed.sum(axis=1) < count
        if short.any():
            raise ValueError(
                f"user {int(batch[short][0])} has fewer than {count} items to sample negatives "
                "from (outside their history, with non-zero popularity)"
            )
        uniform = rng.random((batch.size, num_items))
        gumbel = -np.log(-np.log(np.maximum(uniform, np.finfo(np.float64).tiny)))
        keys = np.where(allowed, log_weight[None, :] + gumbel, -np.inf)
        out[lo : lo + batch.size] = top_k(keys, count)
    return out


def evaluate_leave_one_out(
    method: Method,
    split: Split,
    *,
    ks: Sequence[int],
    exclude_valid: bool,
    sampled_negatives: int,
    negative_sampling: str,
    seed: int,
    beyond_ks: Sequence[int],
    cold_user_max_ratings: int,
    head_fraction: float,
    diversity_feature: str | None,
    batch_size: int,
) -> Numbers:
    """Rank of each user's held-out last item; HR/NDCG/MRR at K.

    Full ranking: candidates are all items except the user's history (training items, and
    the validation item when `exclude_valid`); the held-out item always stays a candidate.
    With `sampled_negatives` = n > 0, also against n negatives drawn among the items the user
    never interacted with (training, validation, test), by training popularity ("popularity")
    or uniformly ("uniform"); those keys are prefixed "sampled{n}_pop/" or
    "sampled{n}_uniform/" because they are not comparable with full ranking (they run several
    times higher). Slice "rare_items/": users whose
    held-out item is a long-tail item.

    Returns:
      Metric name -> value.
    """
    if negative_sampling not in ("popularity", "uniform"):
        raise ValueError(
            f"negative_sampling must be 'popularity' or 'uniform', got {negative_sampling!r}"
        )
    train, test = split.train, split.test
    stats = TrainStats.of(train, head_fraction, diversity_feature)
    history = train if split.valid is None or not exclude_valid else concat([train, split.valid])
    order = np.argsort(test.users, kind="stable")
    users = test.users[order].astype(np.int64)
    positives = test.items[order].astype(np.int64)
    if users.size == 0 or np.unique(users).size != users.size:
        raise ValueError(
            f"a leave-one-out test part holds one interaction per user, got {users.size} "
            f"interactions of {np.unique(users).size} users"
        )
    names = ("hr", "ndcg", "mrr")
    per_user: dict[str, list[np.ndarray]] = {}
    lists: list[np.ndarray] = []
    for lo in range(0, users.size, batch_size):
        batch = users[lo : lo + batch_size]
        rows = np.arange(batch.size)
        scores = np.asarray(method.score_all(batch), dtype=np.float64)
        relevant = np.zeros(scores.shape, bool)
        relevant[rows, positives[lo : lo + batch_size]] = True
        mask = ~_scatter(history, batch, train.num_items) | relevant
        for name, v in metrics.ranking_metrics(scores, relevant, ks, mask).items():
            per_user.setdefault(name, []).append(v)
        lists.append(_lists(scores, mask, max(beyond_ks)))
    per = _cutoff_names({k: np.concatenate(v) for k, v in per_user.items()}, names)
    out = {name: _mean(v) for name, v in per.items()}
    out["users"] = float(users.size)
    out.update(_slice_means(per, stats.user_counts[users] <= cold_user_max_ratings, "cold_users/"))
    out.update(_slice_means(per, ~stats.head[positives], "rare_items/"))
    out.update(beyond_accuracy(np.concatenate(lists), stats, beyond_ks))
    if sampled_negatives > 0:
        popularity = None
        if negative_sampling == "popularity":
            popularity = np.bincount(train.items, minlength=train.num_items)
        # Negatives are items the user never interacted with, validation item included.
        interacted = train if split.valid is None else concat([train, split.valid])
        negatives = sample_negatives(
            interacted,
            users,
            positives,
            sampled_negatives,
            popularity=popularity,
            rng=np.random.default_rng(seed),
            batch_size=batch_size,
        )
        cands = np.concatenate([positives[:, None], negatives], axis=1)  # positive first
        sampled = Candidates(
            users=users,
            items=cands,
            ratings=np.zeros(cands.shape, np.float32),
            mask=np.ones(cands.shape, bool),
        )
        scores = score_candidates(method, sampled, batch_size)
        relevant = np.zeros(cands.shape, bool)
        relevant[:, 0] = True
        sampled_per = _cutoff_names(metrics.ranking_metrics(scores, relevant, ks), names)
        tag = "pop" if negative_sampling == "popularity" else "uniform"
        out.update(
            {f"sampled{sampled_negatives}_{tag}/{k}": _mean(v) for k, v in sampled_per.items()}
        )
    return out


def evaluate_ctr(
    method: Method,
    split: Split,
    *,
    threshold: float,
    cold_user_max_ratings: int,
    head_fraction: float,
    batch_size: int,
) -> Numbers:
    """AUC, LogLoss and per-user AUC of the test pairs, label = rating >= `threshold`.

    LogLoss only for methods whose class sets `outputs_probabilities = True` (scores in
    [0, 1] that mean P(label = 1)); a ranking score has no log loss. "gauc" is the
    impression-weighted per-user AUC (`metrics.gauc`). Slices: "cold_users/auc" on the pairs
    of users with few training ratings, "rare_items/auc" on the pairs of long-tail items.

    Returns:
      Metric name -> value.
    """
    stats = TrainStats.of(split.train, head_fraction, None)
    cands = Candidates.of(split.test)
    scores = score_candidates(method, cands, batch_size)[cands.mask]  # pairs, grouped by user
    users = np.broadcast_to(cands.users[:, None], cands.items.shape)[cands.mask]
    items = cands.items[cands.mask]
    labels = cands.ratings[cands.mask] >= threshold
    out: Numbers = {
        "auc": metrics.auc(labels, scores),
        "gauc": metrics.gauc(users, labels, scores),
        "pairs": float(labels.size),
        "positive_share": float(labels.mean()),
    }
    if getattr(method, "outputs_probabilities", False):
        out["logloss"] = metrics.logloss(labels, scores)
    cold = stats.user_counts[users] <= cold_user_max_ratings
    out["cold_users/auc"] = metrics.auc(labels, scores, cold)
    out["cold_users/pairs"] = float(cold.sum())
    rare = ~stats.head[items]
    out["rare_items/auc"] = metrics.auc(labels, scores, rare)
    out["rare_items/pairs"] = float(rare.sum())
    return out


# -- repeats, restarts, aggregation -----------------------------------------------------------


def _plain(obj: Any) -> Any:
    """Config values as JSON types (ConfigDict and mappings -> dict, tuples -> list)."""
    if hasattr(obj, "to_dict"):
        obj = obj.to_dict()
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def dataset_fingerprint(ds: Dataset) -> str:
    """A SHA-256 of the interactions and vocabulary sizes: the data a repeat depends on."""
    h = hashlib.sha256(f"{ds.name}|{ds.num_users}|{ds.num_items}".encode())
    for arr in (ds.users, ds.items, ds.ratings, ds.timestamps):
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def _fingerprint(**parts: Any) -> str:
    text = json.dumps(_plain(parts), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def summarise(repeats: Mapping[str, Numbers]) -> dict[str, Any]:
    """Mean and sample standard deviation of every metric over repeats (NaN values left out).

    Args:
      repeats: repeat label -> metric -> value.

    Returns:
      {"mean": {metric: float | None}, "std": {metric: float | None}, "repeats": repeats}.
    """
    names = list(dict.fromkeys(k for r in repeats.values() for k in r))
    mean: dict[str, float | None] = {}
    std: dict[str, float | None] = {}
    for name in names:
        values = np.array([r[name] for r in repeats.values() if name in r], dtype=np.float64)
        values = values[np.isfinite(values)]
        mean[name] = float(values.mean()) if values.size else None
        std[name] = float(values.std(ddof=1)) if values.size > 1 else (0.0 if values.size else None)
    return {"mean": mean, "std": std, "repeats": dict(repeats)}


@dataclasses.dataclass(frozen=True)
class _Runner:
    """The repeat loop shared by the protocols: seeds x fractions x methods, with restarts."""

    protocol: str
    make_method: MethodFactory
    methods: Mapping[str, Mapping[str, Any]]
    seeds: Sequence[int]
    options: Mapping[str, Any]
    data_fingerprint: str
    store: Store | None
    workdir: Path | None
    progress: bool

    def run(
        self,
        prepare: Callable[[int], Any],
        fit_parts: Callable[[Any, int, float | None], tuple[Dataset, Dataset | None]],
        evaluate: Callable[[Method, Any, Dataset, int], Numbers],
        fractions: Sequence[float | None] = (None,),
    ) -> dict[str, dict[float | None, dict[str, Numbers]]]:
        """Runs (or restores) every repeat.

        Args:
          prepare: seed -> the split (built once per seed, only if a repeat needs it).
          fit_parts: (split, seed, fraction) -> (train, valid) to fit on.
          evaluate: (fitted method, split, train it saw, seed) -> metrics.
          fractions: training fractions (size protocol) or (None,).

        Returns:
          method -> fraction -> str(seed) -> metrics.
        """
        results: dict[str, dict[float | None, dict[str, Numbers]]] = {
            name: {f: {} for f in fractions} for name in self.methods
        }
        total = len(self.seeds) * len(fractions) * len(self.methods)
        with tqdm(total=total, desc=self.protocol, unit="repeat", disable=not self.progress) as bar:
            for seed in self.seeds:
                split = None
                for fraction in fractions:
                    for name, config in self.methods.items():
                        key = f"{self.protocol}/{name}/seed={seed}"
                        if fraction is not None:
                            key += f"/fraction={fraction:g}"
                        fingerprint = _fingerprint(
                            protocol=self.protocol,
                            options=self.options,
                            data=self.data_fingerprint,
                            method=name,
                            config=config,
                            seed=seed,
                            fraction=fraction,
                        )
                        result = None if self.store is None else self.store.get(key, fingerprint)
                        if result is None:
                            bar.set_postfix_str(key)
                            if split is None:
                                split = prepare(seed)
                            train, valid = fit_parts(split, seed, fraction)
                            result = self._one(
                                name, config, seed, key, split, train, valid, evaluate
                            )
                            if self.store is not None:
                                self.store.put(key, fingerprint, result)
                        results[name][fraction][str(seed)] = result
                        bar.update()
        return results

    def _one(
        self,
        name: str,
        config: Mapping[str, Any],
        seed: int,
        key: str,
        split: Any,
        train: Dataset,
        valid: Dataset | None,
        evaluate: Callable[[Method, Any, Dataset, int], Numbers],
    ) -> Numbers:
        workdir = None if self.workdir is None else self.workdir / "methods" / key
        method = self.make_method(name, config, seed=seed, workdir=workdir)
        started = time.perf_counter()
        method.fit(train, valid)
        fitted = time.perf_counter()
        result = evaluate(method, split, train, seed)
        result["time/fit_seconds"] = fitted - started
        result["time/eval_seconds"] = time.perf_counter() - fitted
        return result

    def output(self, dataset: Dataset, results: Mapping[str, Mapping[Any, Mapping]]) -> dict:
        return {
            "protocol": self.protocol,
            "options": _plain(dict(self.options)),
            "seeds": list(self.seeds),
            "dataset": {
                "name": dataset.name,
                "users": dataset.num_users,
                "items": dataset.num_items,
                "interactions": dataset.num_interactions,
                "fingerprint": self.data_fingerprint,
            },
            "methods": {name: dict(by) for name, by in results.items()},
        }


def _runner(
    protocol: str,
    make_method: MethodFactory,
    dataset: Dataset,
    methods: Mapping[str, Mapping[str, Any]],
    seeds: Sequence[int],
    options: Mapping[str, Any],
    store: Store | None,
    workdir: str | Path | None,
    progress: bool,
) -> _Runner:
    if not methods:
        raise ValueError("no methods to evaluate")
    if not seeds:
        raise ValueError("no seeds: need at least one repeat")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {list(seeds)}")
    return _Runner(
        protocol=protocol,
        make_method=make_method,
        methods=methods,
        seeds=[int(s) for s in seeds],
        options=options,
        data_fingerprint=dataset_fingerprint(dataset),
        store=store,
        workdir=None if workdir is None else Path(workdir),
        progress=progress,
    )


def _check_common(ks: Sequence[int], beyond_ks: Sequence[int], batch_size: int) -> None:
    if not ks or min(ks) < 1 or not beyond_ks or min(beyond_ks) < 1:
        raise ValueError(f"cut-offs must be integers >= 1, got ks={ks}, beyond_ks={beyond_ks}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")


# -- the protocols ----------------------------------------------------------------------------


def paper_protocol(
    make_method: MethodFactory,
    dataset: Dataset,
    methods: Mapping[str, Mapping[str, Any]],
    seeds: Sequence[int],
    *,
    fractions: Sequence[float] = (0.8, 0.2),
    max_n: int = 20,
    threshold: float = 4.0,
    beyond_ks: Sequence[int] = (10,),
    cold_user_max_ratings: int = 20,
    head_fraction: float = 0.2,
    diversity_feature: str | None = "genres",
    batch_size: int = 256,
    store: Store | None = None,
    workdir: str | Path | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """The study's comparison (its Fig. 6): precision@N over random 80/20 splits.

    Per seed: `random_split(dataset, fractions, seed)`; each method is fitted on the training
    part (valid=None) and ranks each user's held-out items (`evaluate_held_out`).

    Args:
      make_method: builds each repeat's method (see `MethodFactory`).
      dataset: all interactions.
      methods: name -> hyperparameters, in the order of the report.
      seeds: one repeat per seed.
      fractions: (train, test) shares of the split.
      max_n: precision@N for N = 1..max_n.
      threshold: a recommendation is accurate when the rating is >= threshold.
      beyond_ks: list lengths of the beyond-accuracy metrics.
      cold_user_max_ratings: the cold-user slice: at most this many training ratings.
      head_fraction: share of the catalogue in the popular head (the rest is the long tail).
      diversity_feature: item vectors of the diversity metric ("genres", another multi-hot
        column, "vectors"), or None to skip it.
      batch_size: users per scoring call.
      store: finished repeats (restart support), or None.
      workdir: the run folder; each repeat's method gets `workdir/methods/<key>`.
      progress: show a progress bar.

    Returns:
      See the module docstring; every repeat has "precision@1".."precision@{max_n}",
      "base_rate", the slices and the beyond-accuracy metrics.
    """
    _check_common((max_n,), beyond_ks, batch_size)
    options = {
        "fractions": fractions,
        "max_n": max_n,
        "threshold": threshold,
        "beyond_ks": beyond_ks,
        "cold_user_max_ratings": cold_user_max_ratings,
        "head_fraction": head_fraction,
        "diversity_feature": diversity_feature,
    }
    runner = _runner(
        "paper", make_method, dataset, methods, seeds, options, store, workdir, progress
    )
    held_out = {k: v for k, v in options.items() if k != "fractions"}

    def evaluate(method: Method, split: Split, train: Dataset, seed: int) -> Numbers:
        return evaluate_held_out(method, train, split.test, batch_size=batch_size, **held_out)

    results = runner.run(
        prepare=lambda seed: random_split(dataset, fractions, seed=seed),
        fit_parts=lambda split, seed, fraction: (split.train, None),
        evaluate=evaluate,
    )
    return runner.output(dataset, {n: summarise(r[None]) for n, r in results.items()})


def size_protocol(
    make_method: MethodFactory,
    dataset: Dataset,
    methods: Mapping[str, Mapping[str, Any]],
    seeds: Sequence[int],
    *,
    train_fractions: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
    fractions: Sequence[float] = (0.8, 0.2),
    max_n: int = 20,
    threshold: float = 4.0,
    beyond_ks: Sequence[int] = (10,),
    cold_user_max_ratings: int = 20,
    head_fraction: float = 0.2,
    diversity_feature: str | None = "genres",
    batch_size: int = 256,
    store: Store | None = None,
    workdir: str | Path | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Precision@N against the amount of training data (the study's Fig. 7).

    Per seed: the paper protocol's split; for each training fraction f the methods are fitted
    on `subsample(train, f, seed)` (nested: a larger f keeps every interaction a smaller one
    keeps) and evaluated on the same held-out part. Arguments as in `paper_protocol`, plus
    `train_fractions`.

    Returns:
      As `paper_protocol`, but methods[name] = {"fractions": {"0.1": summary, ...}}.
    """
    _check_common((max_n,), beyond_ks, batch_size)
    if not train_fractions or not all(0 < f <= 1 for f in train_fractions):
        raise ValueError(f"train_fractions must be in (0, 1], got {train_fractions}")
    options = {
        "train_fractions": train_fractions,
        "fractions": fractions,
        "max_n": max_n,
        "threshold": threshold,
        "beyond_ks": beyond_ks,
        "cold_user_max_ratings": cold_user_max_ratings,
        "head_fraction": head_fraction,
        "diversity_feature": diversity_feature,
    }
    runner = _runner(
        "size", make_method, dataset, methods, seeds, options, store, workdir, progress
    )
    held_out = {k: v for k, v in options.items() if k not in ("fractions", "train_fractions")}

    def evaluate(method: Method, split: Split, train: Dataset, seed: int) -> Numbers:
        return evaluate_held_out(method, train, split.test, batch_size=batch_size, **held_out)

    results = runner.run(
        prepare=lambda seed: random_split(dataset, fractions, seed=seed),
        fit_parts=lambda split, seed, fraction: (subsample(split.train, fraction, seed=seed), None),
        evaluate=evaluate,
        fractions=[float(f) for f in train_fractions],
    )
    summaries = {
        name: {"fractions": {f"{f:g}": summarise(r) for f, r in by.items()}}
        for name, by in results.items()
    }
    return runner.output(dataset, summaries)


def full_ranking_protocol(
    make_method: MethodFactory,
    dataset: Dataset,
    methods: Mapping[str, Mapping[str, Any]],
    seeds: Sequence[int],
    *,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    ks: Sequence[int] = (5, 10, 20),
    threshold: float | None = None,
    exclude_valid: bool = True,
    beyond_ks: Sequence[int] = (10,),
    cold_user_max_ratings: int = 20,
    head_fraction: float = 0.2,
    diversity_feature: str | None = "genres",
    batch_size: int = 256,
    store: Store | None = None,
    workdir: str | Path | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Top-K over the full catalogue on a per-user random split (RecBole's protocol).

    Per seed: `per_user_random_split(dataset, fractions, seed)`; methods are fitted on the
    training part with the validation part (None for a two-way split); `evaluate_full_ranking`.
    With the defaults this is the protocol behind RecBole's ItemKNN and Pop numbers in
    docs/references.md: 80/10/10 within each user, relevant = every test item, and (as RecBole
    does at test time) the user's training and validation items leave the candidates.

    Args:
      fractions: (train, [valid,] test) shares within each user.
      ks: cut-offs K of Precision/Recall/NDCG/HR/MRR/MAP.
      threshold: relevant = test items rated >= threshold; None = every test item.
      exclude_valid: also drop the user's validation items from the candidates.
      The rest as in `paper_protocol`.

    Returns:
      See the module docstring.
    """
    _check_common(ks, beyond_ks, batch_size)
    options = {
        "fractions": fractions,
        "ks": ks,
        "threshold": threshold,
        "exclude_valid": exclude_valid,
        "beyond_ks": beyond_ks,
        "cold_user_max_ratings": cold_user_max_ratings,
        "head_fraction": head_fraction,
        "diversity_feature": diversity_feature,
    }
    runner = _runner(
        "full_ranking", make_method, dataset, methods, seeds, options, store, workdir, progress
    )
    ranking = {k: v for k, v in options.items() if k != "fractions"}

    def evaluate(method: Method, split: Split, train: Dataset, seed: int) -> Numbers:
        return evaluate_full_ranking(method, split, batch_size=batch_size, **ranking)

    results = runner.run(
        prepare=lambda seed: per_user_random_split(dataset, fractions, seed=seed),
        fit_parts=lambda split, seed, fraction: (split.train, split.valid),
        evaluate=evaluate,
    )
    return runner.output(dataset, {n: summarise(r[None]) for n, r in results.items()})


def leave_one_out_protocol(
    make_method: MethodFactory,
    dataset: Dataset,
    methods: Mapping[str, Mapping[str, Any]],
    seeds: Sequence[int],
    *,
    ks: Sequence[int] = (5, 10, 20),
    exclude_valid: bool = True,
    sampled_negatives: int = 0,
    negative_sampling: str = "popularity",
    beyond_ks: Sequence[int] = (10,),
    cold_user_max_ratings: int = 20,
    head_fraction: float = 0.2,
    diversity_feature: str | None = "genres",
    batch_size: int = 256,
    store: Store | None = None,
    workdir: str | Path | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Next-item evaluation: each user's last interaction by time, ranked over the catalogue.

    The split (`leave_one_out`: last item test, second to last validation) is the same for
    every seed; seeds vary the methods' randomness and the sampled negatives. Methods are
    fitted on the training part with the validation part. A sequential method should score
    the test item from the history including the validation item (that is the method's
    concern: it receives both parts in `fit`).

    Args:
      ks: cut-offs of HR/NDCG/MRR.
      exclude_valid: drop the validation item from the candidates too (it is history).
      sampled_negatives: n > 0 also ranks the test item against n sampled negatives, keys
        "sampled{n}_pop/..." (BERT4Rec paper: 100, popularity) or "sampled{n}_uniform/...".
      negative_sampling: "popularity" (by training interactions) or "uniform".
      The rest as in `paper_protocol`.

    Returns:
      See the module docstring.
    """
    _check_common(ks, beyond_ks, batch_size)
    if sampled_negatives < 0:
        raise ValueError(f"sampled_negatives must be >= 0, got {sampled_negatives}")
    options = {
        "ks": ks,
        "exclude_valid": exclude_valid,
        "sampled_negatives": sampled_negatives,
        "negative_sampling": negative_sampling,
        "beyond_ks": beyond_ks,
        "cold_user_max_ratings": cold_user_max_ratings,
        "head_fraction": head_fraction,
        "diversity_feature": diversity_feature,
    }
    runner = _runner(
        "leave_one_out", make_method, dataset, methods, seeds, options, store, workdir, progress
    )

    def evaluate(method: Method, split: Split, train: Dataset, seed: int) -> Numbers:
        return evaluate_leave_one_out(method, split, seed=seed, batch_size=batch_size, **options)

    results = runner.run(
        prepare=lambda seed: leave_one_out(dataset, with_valid=True),
        fit_parts=lambda split, seed, fraction: (split.train, split.valid),
        evaluate=evaluate,
    )
    return runner.output(dataset, {n: summarise(r[None]) for n, r in results.items()})


def ctr_protocol(
    make_method: MethodFactory,
    dataset: Dataset,
    methods: Mapping[str, Mapping[str, Any]],
    seeds: Sequence[int],
    *,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    threshold: float = 4.0,
    cold_user_max_ratings: int = 20,
    head_fraction: float = 0.2,
    batch_size: int = 256,
    store: Store | None = None,
    workdir: str | Path | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Click-through evaluation: AUC, LogLoss, GAUC on a random split of all ratings.

    Per seed: `random_split(dataset, fractions, seed)` (80/10/10, RecBole's CTR protocol in
    docs/references.md); methods are fitted with the validation part; `evaluate_ctr` on the
    test pairs, label = rating >= threshold.

    Returns:
      See the module docstring.
    """
    _check_common((1,), (1,), batch_size)
    options = {
        "fractions": fractions,
        "threshold": threshold,
        "cold_user_max_ratings": cold_user_max_ratings,
        "head_fraction": head_fraction,
    }
    runner = _runner("ctr", make_method, dataset, methods, seeds, options, store, workdir, progress)
    ctr = {k: v for k, v in options.items() if k != "fractions"}

    def evaluate(method: Method, split: Split, train: Dataset, seed: int) -> Numbers:
        return evaluate_ctr(method, split, batch_size=batch_size, **ctr)

    results = runner.run(
        prepare=lambda seed: random_split(dataset, fractions, seed=seed),
        fit_parts=lambda split, seed, fraction: (split.train, split.valid),
        evaluate=evaluate,
    )
    return runner.output(dataset, {n: summarise(r[None]) for n, r in results.items()})


# Protocols by the name an evaluate config uses (config.protocol.name).
PROTOCOLS: dict[str, Callable[..., dict[str, Any]]] = {
    "paper": paper_protocol,
    "size": size_protocol,
    "full_ranking": full_ranking_protocol,
    "leave_one_out": leave_one_out_protocol,
    "ctr": ctr_protocol,
}
