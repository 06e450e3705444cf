"""CTR metrics on host NumPy arrays: AUC, LogLoss, per-user AUC and GAUC."""

from __future__ import annotations

import numpy as np


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of `x` ([N]) in ascending order, ties sharing their average rank."""
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], x.size]
    avg = (starts + ends + 1) / 2.0  # mean of the 1-based ranks starts+1 .. ends
    ranks = np.empty(x.size, dtype=np.float64)
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def auc(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Area under the ROC curve; a tied (positive, negative) pair counts one half.

    Args:
      labels: [N] 0/1.
      scores: [N] float, higher = more likely positive.
      weights: optional [N] 0/1 mask of the examples to count.

    Returns:
      AUC in [0, 1]; NaN when one class is absent.
    """
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    if weights is not None:
        keep = np.asarray(weights) > 0
        labels, scores = labels[keep], scores[keep]
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    # Mann-Whitney U: the positives' rank sum minus its minimum, over all pairs.
    rank_sum = _average_ranks(scores)[labels].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def logloss(
    labels: np.ndarray, probs: np.ndarray, weights: np.ndarray | None = None, eps: float = 1e-7
) -> float:
    """Mean binary cross-entropy of probabilities clipped to [eps, 1 - eps].

    Args:
      labels: [N] 0/1; probs: [N] predicted P(label = 1); weights: optional [N].
    """
    labels = np.asarray(labels, dtype=np.float64)
    p = np.clip(np.asarray(probs, dtype=np.float64), eps, 1 - eps)
    w = np.ones_like(labels) if weights is None else np.asarray(weights, dtype=np.float64)
    losses = -(labels * np.log(p) + (1 - labels) * np.log1p(-p))
    return float((w * losses).sum() / max(w.sum(), 1e-12))


def per_user_auc(
    users: np.ndarray, labels: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The AUC of each user's own examples (ties count one half, as in `auc`).

    Args:
      users: [N] int user of each example.
      labels: [N] 0/1.
      scores: [N] float.

    Returns:
      (users [V] int64, aucs [V] float64, counts [V] int64) for the V users that have both a
      positive and a negative example, ascending by user; counts = the user's examples.
    """
    users = np.asarray(users, dtype=np.int64)
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    n = users.size
    # Sort by user, then score; a tie group is a run of equal (user, score).
    order = np.lexsort((scores, users))
    su, ss = users[order], scores[order]
    new_user = np.r_[True, su[1:] != su[:-1]]
    new_tie = new_user | np.r_[True, ss[1:] != ss[:-1]]
    user_start = np.maximum.accumulate(np.where(new_user, np.arange(n), 0))
    tie_start = np.flatnonzero(new_tie)
    tie_end = np.r_[tie_start[1:], n]
    # 1-based rank within the user, ties sharing their average rank.
    avg = np.repeat((tie_start + tie_end + 1) / 2.0, tie_end - tie_start) - user_start
    distinct, inverse = np.unique(su, return_inverse=True)
    pos = labels[order]
    n_pos = np.bincount(inverse, weights=pos, minlength=distinct.size)
    count = np.bincount(inverse, minlength=distinct.size)
    n_neg = count - n_pos
    rank_sum = np.bincount(inverse, weights=np.where(pos, avg, 0.0), minlength=distinct.size)
    both = (n_pos > 0) & (n_neg > 0)
    aucs = (rank_sum[both] - n_pos[both] * (n_pos[both] + 1) / 2) / (n_pos[both] * n_neg[both])
    return distinct[both], aucs, count[both].astype(np.int64)


def gauc(users: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> float:
    """Group AUC: per-user AUC averaged with weights = the user's number of examples.

    The impression-weighted average of Zhou et al. (DIN, KDD 2018); users with a single class
    are left out. NaN when no user has both classes.

    Args:
      users: [N] int; labels: [N] 0/1; scores: [N] float.
    """
    _, aucs, counts = per_user_auc(users, labels, scores)
    if counts.size == 0:
        return float("nan")
    return float(np.average(aucs, weights=counts))
