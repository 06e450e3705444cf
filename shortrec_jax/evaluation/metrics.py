"""Metrics on host NumPy arrays: CTR (AUC, LogLoss) and ranking (HR, NDCG, MRR at K)."""

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


def rank_metrics_from_ranks(ranks: np.ndarray, ks: tuple[int, ...]) -> dict[str, float]:
    """HR@K, NDCG@K and MRR@K for one relevant item per user, from its rank.

    Args:
      ranks: [U] int, the 0-based rank of each user's held-out item among its candidates
        (0 = ranked first).
      ks: cut-offs.

    Returns:
      {"hr@K", "ndcg@K", "mrr@K"} averaged over users, for each K.
    """
    ranks = np.asarray(ranks)
    out: dict[str, float] = {}
    for k in ks:
        hit = ranks < k
        out[f"hr@{k}"] = float(hit.mean())
        out[f"ndcg@{k}"] = float(np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0).mean())
        out[f"mrr@{k}"] = float(np.where(hit, 1.0 / (ranks + 1.0), 0.0).mean())
    return out
