"""One fitted method on one split: the measurements behind the protocols.

`evaluate_held_out`       the study's: each user ranks only their own held-out items.
`evaluate_full_ranking`   each user ranks every item outside their history (RecBole's top-K).
`evaluate_leave_one_out`  the rank of each user's last item, over the catalogue and
                          optionally against `sample_negatives`.
`evaluate_ctr`            AUC, LogLoss and per-user AUC of labelled pairs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shortrec_jax import metrics
from shortrec_jax.data.dataset import Dataset
from shortrec_jax.data.splits import (
    Split,
    concat,
)
from shortrec_jax.evaluation.candidates import (
    PerUserCandidates,
    interaction_mask,
    score_candidates,
    top_lists,
)
from shortrec_jax.evaluation.slices import (
    Numbers,
    TrainStats,
    beyond_accuracy,
    mean_or_nan,
    metrics_named,
    slice_means,
)
from shortrec_jax.interface import Method, top_k


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
    cands = PerUserCandidates.of(test)
    scores = score_candidates(method, cands, batch_size)
    relevant = cands.mask & (cands.ratings >= threshold)
    ns = tuple(range(1, max_n + 1))
    precision = metrics.study_precision(scores, relevant, ns, cands.mask)  # [U, max_n]
    per_user = {f"precision@{n}": precision[:, i] for i, n in enumerate(ns)}
    out = {name: mean_or_nan(v) for name, v in per_user.items()}
    out["users"] = float(cands.users.size)
    out["base_rate"] = mean_or_nan(relevant.sum(axis=1) / cands.mask.sum(axis=1))
    cold = stats.user_counts[cands.users] <= cold_user_max_ratings
    out.update(slice_means(per_user, cold, "cold_users/"))
    tail_mask = cands.mask & ~stats.head[cands.items]
    has_tail = tail_mask.any(axis=1)
    tail_precision = metrics.study_precision(
        scores[has_tail], relevant[has_tail], ns, tail_mask[has_tail]
    )
    tail_per_user = {f"precision@{n}": tail_precision[:, i] for i, n in enumerate(ns)}
    out.update(slice_means(tail_per_user, None, "rare_items/"))
    cols = top_lists(scores, cands.mask, max(beyond_ks))
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
        relevant = interaction_mask(positives, batch, train.num_items)
        mask = ~interaction_mask(history, batch, train.num_items) | relevant
        _append(per_user, metrics.ranking_metrics(scores, relevant, ks, mask))
        _append(tail_user, _long_tail_metrics(scores, relevant, mask, stats.head, ks))
        lists.append(top_lists(scores, mask, max(beyond_ks)))
    per = _joined(per_user)
    out = {name: mean_or_nan(v) for name, v in per.items()}
    out["users"] = float(users.size)
    cold = stats.user_counts[users] <= cold_user_max_ratings
    out.update(slice_means(per, cold, "cold_users/"))
    out.update(slice_means(_joined(tail_user), None, "rare_items/"))
    out.update(beyond_accuracy(np.concatenate(lists), stats, beyond_ks))
    return out


def _append(into: dict[str, list[np.ndarray]], values: dict[str, np.ndarray]) -> None:
    """Appends each metric's per-user values of one batch to its list in `into`."""
    for name, v in values.items():
        into.setdefault(name, []).append(v)


def _joined(parts: dict[str, list[np.ndarray]]) -> dict[str, np.ndarray]:
    """Each metric's per-user values of all batches, in order: [U] each."""
    return {name: np.concatenate(v) for name, v in parts.items()}


def _long_tail_metrics(
    scores: np.ndarray,
    relevant: np.ndarray,
    mask: np.ndarray,
    head: np.ndarray,
    ks: Sequence[int],
) -> dict[str, np.ndarray]:
    """Ranking metrics of the users with a relevant long-tail item, counting only those as
    relevant and taking the relevant head items out of the candidates.

    Args:
      scores, relevant, mask: [B, I]; head: [I] bool, the popular head.

    Returns:
      metric name -> [B'] per-user values, B' the rows with a relevant long-tail item.
    """
    tail_relevant = relevant & ~head
    tail_rows = tail_relevant.any(axis=1)
    tail_mask = mask & ~(relevant & head)
    return metrics.ranking_metrics(
        scores[tail_rows], tail_relevant[tail_rows], ks, tail_mask[tail_rows]
    )


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
        allowed = ~interaction_mask(history, batch, num_items)
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
    per_user: dict[str, list[np.ndarray]] = {}
    lists: list[np.ndarray] = []
    for lo in range(0, users.size, batch_size):
        batch = users[lo : lo + batch_size]
        rows = np.arange(batch.size)
        scores = np.asarray(method.score_all(batch), dtype=np.float64)
        relevant = np.zeros(scores.shape, bool)
        relevant[rows, positives[lo : lo + batch_size]] = True
        mask = ~interaction_mask(history, batch, train.num_items) | relevant
        _append(per_user, metrics.ranking_metrics(scores, relevant, ks, mask))
        lists.append(top_lists(scores, mask, max(beyond_ks)))
    per = metrics_named(_joined(per_user), _NEXT_ITEM_METRICS)
    out = {name: mean_or_nan(v) for name, v in per.items()}
    out["users"] = float(users.size)
    out.update(slice_means(per, stats.user_counts[users] <= cold_user_max_ratings, "cold_users/"))
    out.update(slice_means(per, ~stats.head[positives], "rare_items/"))
    out.update(beyond_accuracy(np.concatenate(lists), stats, beyond_ks))
    if sampled_negatives > 0:
        out.update(
            _sampled_metrics(
                method,
                split,
                users,
                positives,
                ks=ks,
                count=sampled_negatives,
                negative_sampling=negative_sampling,
                seed=seed,
                batch_size=batch_size,
            )
        )
    return out


# The metrics of a next-item ranking (one relevant item per user).
_NEXT_ITEM_METRICS = ("hr", "ndcg", "mrr")


def _sampled_metrics(
    method: Method,
    split: Split,
    users: np.ndarray,
    positives: np.ndarray,
    *,
    ks: Sequence[int],
    count: int,
    negative_sampling: str,
    seed: int,
    batch_size: int,
) -> Numbers:
    """HR/NDCG/MRR of each user's held-out item against `count` sampled negatives.

    Args:
      users: [U] int64 users; positives: [U] int64 the held-out item of each.

    Returns:
      "sampled{count}_pop/<metric>" or "sampled{count}_uniform/<metric>" -> value.
    """
    train = split.train
    popularity = None
    if negative_sampling == "popularity":
        popularity = np.bincount(train.items, minlength=train.num_items)
    # Negatives are items the user never interacted with, validation item included.
    interacted = train if split.valid is None else concat([train, split.valid])
    negatives = sample_negatives(
        interacted,
        users,
        positives,
        count,
        popularity=popularity,
        rng=np.random.default_rng(seed),
        batch_size=batch_size,
    )
    cands = np.concatenate([positives[:, None], negatives], axis=1)  # positive first
    sampled = PerUserCandidates(
        users=users,
        items=cands,
        ratings=np.zeros(cands.shape, np.float32),
        mask=np.ones(cands.shape, bool),
    )
    scores = score_candidates(method, sampled, batch_size)
    relevant = np.zeros(cands.shape, bool)
    relevant[:, 0] = True
    sampled_per = metrics_named(metrics.ranking_metrics(scores, relevant, ks), _NEXT_ITEM_METRICS)
    tag = "pop" if negative_sampling == "popularity" else "uniform"
    return {f"sampled{count}_{tag}/{k}": mean_or_nan(v) for k, v in sampled_per.items()}


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
    cands = PerUserCandidates.of(split.test)
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
