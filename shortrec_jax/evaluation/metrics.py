"""Metrics on host NumPy arrays: CTR, top-K ranking, the study's precision, beyond accuracy.

CTR: `auc`, `logloss`, `per_user_auc` / `gauc`.

Ranking: `ranking_metrics` (Precision, Recall, NDCG, HR, MRR, MAP at K from scores),
`metrics_from_ranked_lists` (the same from given ranked lists), `study_precision` (the study's
precision@N), `rank_metrics_from_ranks` (one relevant item per user, from its rank).
Relevance is binary. Definitions, for a user with R relevant candidates and rel_p = 1 when
position p (0-based) of the ranking holds a relevant item:
  precision@K = sum_{p<K} rel_p / K
  recall@K    = sum_{p<K} rel_p / R
  NDCG@K      = sum_{p<K} rel_p / log2(p + 2)  over the ideal  sum_{p<min(K, R)} 1 / log2(p + 2)
  HR@K        = 1 when some rel_p = 1 with p < K
  MRR@K       = 1 / (p + 1) for the first relevant position p < K, else 0
  MAP@K       = sum_{p<K} rel_p * precision@(p + 1) / min(K, R)
as in RecBole. Users without relevant candidates get NaN: they are not evaluated.

Tied scores. Scores rank candidates, and a method that gives several candidates the same
score has not ordered them. Any fixed tie rule (e.g. "the lower item index first") then lends
the metric an order that the method never chose, and item indices follow first appearance in
the data file, so they correlate with popularity. `ranking_metrics` and `study_precision` return
instead the exact expected value of each metric when tied candidates are put in uniformly random
order (McSherry and Najork, ECIR 2008): a constant scorer gets precisely the base rate, with no
sampling noise and no seed. Ranked lists that are handed over (`metrics_from_ranked_lists`)
are taken as they are. Beyond-accuracy metrics need one concrete list per user; the protocols
build it with `shortrec_jax.interface.top_k`, whose ties go to the lower column.

Beyond accuracy, on recommendation lists [U, K] of item indices where -1 marks an empty slot:
`catalogue_coverage`, `novelty`, `intra_list_diversity`, `head_items` and `long_tail_share`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from shortrec_jax.interface import top_k

EMPTY = -1  # an empty slot of a recommendation list (the user had fewer than K candidates)


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


@dataclasses.dataclass(frozen=True)
class _Positions:
    """Expected relevance at each of the first K positions of every user's ranking.

    Expectations are over uniformly random orders of tied candidates (for an untied ranking
    they are the plain 0/1 values).

    Attributes:
      gain: [U, K] P(position p holds a relevant item).
      pair: [U, K] E[rel_p * (relevant items earlier in p's tie group)].
      before: [U, K] relevant items in the tie groups wholly before p's group.
      miss: [U, K] P(position p is not relevant | no relevant item earlier in p's group).
      num_relevant: [U] relevant candidates R.
      num_candidates: [U] candidates.
    """

    gain: np.ndarray
    pair: np.ndarray
    before: np.ndarray
    miss: np.ndarray
    num_relevant: np.ndarray
    num_candidates: np.ndarray


def _check_scores(
    scores: np.ndarray, relevant: np.ndarray, mask: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validates shapes; returns (scores with excluded slots at -inf, relevant & mask, mask)."""
    scores = np.asarray(scores, dtype=np.float64)
    relevant = np.asarray(relevant, dtype=bool)
    if scores.ndim != 2 or relevant.shape != scores.shape:
        raise ValueError(
            f"scores and relevant must be [U, C] of one shape, got {scores.shape} and "
            f"{relevant.shape}"
        )
    mask = np.ones(scores.shape, bool) if mask is None else np.asarray(mask, dtype=bool)
    if mask.shape != scores.shape:
        raise ValueError(f"mask must be {scores.shape}, got {mask.shape}")
    if np.isnan(scores[mask]).any():
        row = int(np.flatnonzero(np.isnan(np.where(mask, scores, 0.0)).any(axis=1))[0])
        raise ValueError(f"scores of row {row} contain NaN")
    # Clip candidates' infinities into the finite range so that excluded slots (-inf) rank
    # strictly after every candidate.
    info = np.finfo(np.float64)
    scores = np.where(mask, np.clip(scores, info.min, info.max), -np.inf)
    return scores, relevant & mask, mask


def _tie_positions(
    scores: np.ndarray, relevant: np.ndarray, mask: np.ndarray, k: int
) -> _Positions:
    """Position statistics of the top `k` (<= C) slots; see `_Positions`.

    A tie group of g candidates, r of them relevant, that starts at position s puts a relevant
    item at each of its positions with probability r / g; two of its positions are both
    relevant with probability r (r - 1) / (g (g - 1)); and given that its first j positions
    hold no relevant item, the next one does not either with probability (g - r - j) / (g - j).
    Groups before the cut lie wholly in the top k; the one at the cut is counted over the row.
    """
    idx = top_k(scores, k)  # [U, k], equal scores adjacent
    vals = np.take_along_axis(scores, idx, axis=1)
    rel = np.take_along_axis(relevant, idx, axis=1)
    valid = np.take_along_axis(mask, idx, axis=1)
    pos = np.arange(k)
    new = np.ones(vals.shape, bool)
    new[:, 1:] = vals[:, 1:] != vals[:, :-1]
    last = np.ones(vals.shape, bool)
    last[:, :-1] = new[:, 1:]
    start = np.maximum.accumulate(np.where(new, pos, 0), axis=1)  # [U, k]
    end = np.minimum.accumulate(np.where(last, pos, k - 1)[:, ::-1], axis=1)[:, ::-1]
    crel = np.zeros((vals.shape[0], k + 1))
    np.cumsum(rel, axis=1, out=crel[:, 1:])
    before = np.take_along_axis(crel, start, axis=1)
    group_rel = np.take_along_axis(crel, end + 1, axis=1) - before
    group_size = (end - start + 1).astype(np.float64)
    cut = vals[:, -1:]
    at_cut = (vals == cut) & valid
    in_cut = scores == cut  # [U, C]; masked slots are -inf and only match an empty cut
    group_size = np.where(at_cut, (in_cut & mask).sum(axis=1, keepdims=True), group_size)
    group_rel = np.where(at_cut, (in_cut & relevant).sum(axis=1, keepdims=True), group_rel)
    j = pos - start  # earlier positions of the same group
    g = np.where(valid, group_size, 1.0)
    r = np.where(valid, group_rel, 0.0)
    gain = r / g
    pair = np.where(g > 1, j * r * (r - 1) / np.maximum(g * (g - 1), 1.0), 0.0)
    miss = np.maximum(g - r - j, 0.0) / np.maximum(g - j, 1.0)
    return _Positions(
        gain=gain,
        pair=pair,
        before=np.where(valid, before, 0.0),
        miss=np.where(valid, miss, 1.0),
        num_relevant=relevant.sum(axis=1),
        num_candidates=mask.sum(axis=1),
    )


def _cutoffs(ks: tuple[int, ...]) -> tuple[int, ...]:
    """Validates cut-offs (list lengths): a non-empty sequence of integers >= 1."""
    out = tuple(int(k) for k in ks)
    if not out or min(out) < 1:
        raise ValueError(f"cut-offs must be a non-empty sequence of integers >= 1, got {ks}")
    return out


def _metrics_at(positions: _Positions, ks: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Per-user Precision/Recall/NDCG/HR/MRR/MAP at each K from position statistics."""
    gain, kmax = positions.gain, positions.gain.shape[1]
    num_rel = positions.num_relevant.astype(np.float64)
    evaluated = num_rel > 0
    denom = np.where(evaluated, num_rel, 1.0)
    discount = 1.0 / np.log2(np.arange(kmax) + 2.0)  # [K]
    hits = np.cumsum(gain, axis=1)
    dcg = np.cumsum(gain * discount, axis=1)
    no_hit = np.cumprod(positions.miss, axis=1)  # P(no relevant item in the first p + 1)
    first_at = np.concatenate([np.ones((gain.shape[0], 1)), no_hit[:, :-1]], axis=1) - no_hit
    rr = np.cumsum(first_at / (np.arange(kmax) + 1.0), axis=1)
    ap = np.cumsum(
        (gain * (1.0 + positions.before) + positions.pair) / (np.arange(kmax) + 1.0), axis=1
    )
    # The ideal ranking puts min(K, R) relevant items first; R may exceed the positions held.
    ideal = np.cumsum(1.0 / np.log2(np.arange(max(ks)) + 2.0))
    out: dict[str, np.ndarray] = {}
    for k in ks:
        c = min(k, kmax) - 1  # positions past the candidates add nothing
        idcg = ideal[np.clip(np.minimum(k, num_rel), 1, None).astype(np.int64) - 1]
        values = {
            f"precision@{k}": hits[:, c] / k,
            f"recall@{k}": hits[:, c] / denom,
            f"ndcg@{k}": dcg[:, c] / idcg,
            f"hr@{k}": 1.0 - no_hit[:, c],
            f"mrr@{k}": rr[:, c],
            f"map@{k}": ap[:, c] / np.minimum(k, denom),
        }
        out.update({name: np.where(evaluated, v, np.nan) for name, v in values.items()})
    return out


def ranking_metrics(
    scores: np.ndarray,
    relevant: np.ndarray,
    ks: tuple[int, ...],
    mask: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Per-user Precision, Recall, NDCG, HR, MRR and MAP at each K, expected over tie orders.

    Candidates are ranked by descending score; tied candidates count in every order with equal
    probability (see the module docstring), so the values are exact expectations.

    Args:
      scores: [U, C] float, higher = ranked earlier; no NaN among candidates.
      relevant: [U, C] bool, whether each candidate is relevant.
      ks: cut-offs, each >= 1; a K above C counts the missing positions as irrelevant.
      mask: optional [U, C] bool, the real candidates (False = padding or excluded item).

    Returns:
      {"precision@K", "recall@K", "ndcg@K", "hr@K", "mrr@K", "map@K"} -> [U] float64, NaN for
      users without a relevant candidate.
    """
    scores, relevant, mask = _check_scores(scores, relevant, mask)
    ks = _cutoffs(ks)
    kmax = min(max(ks), scores.shape[1])
    return _metrics_at(_tie_positions(scores, relevant, mask, kmax), ks)


def metrics_from_ranked_lists(
    ranked_relevance: np.ndarray, num_relevant: np.ndarray, ks: tuple[int, ...]
) -> dict[str, np.ndarray]:
    """The metrics of `ranking_metrics` for given ranked lists (no ties to resolve).

    Args:
      ranked_relevance: [U, L] bool, whether position p of each user's list is relevant.
      num_relevant: [U] int, R: the user's relevant items, in the list or not (recall,
        NDCG and MAP divide by it).
      ks: cut-offs; positions past L count as irrelevant.

    Returns:
      As `ranking_metrics`: metric name -> [U] float64, NaN where R = 0.
    """
    rel = np.asarray(ranked_relevance, dtype=bool)
    num_relevant = np.asarray(num_relevant)
    if rel.ndim != 2 or num_relevant.shape != rel.shape[:1]:
        raise ValueError(
            f"ranked_relevance must be [U, L] and num_relevant [U], got {rel.shape} and "
            f"{num_relevant.shape}"
        )
    if np.any(rel.sum(axis=1) > num_relevant):
        raise ValueError("a list holds more relevant items than its user's num_relevant")
    gain = rel.astype(np.float64)
    before = np.cumsum(gain, axis=1) - gain
    positions = _Positions(
        gain=gain,
        pair=np.zeros_like(gain),
        before=before,
        miss=1.0 - gain,
        num_relevant=num_relevant,
        num_candidates=np.full(rel.shape[0], rel.shape[1]),
    )
    return _metrics_at(positions, _cutoffs(ks))


def study_precision(
    scores: np.ndarray,
    relevant: np.ndarray,
    ns: tuple[int, ...],
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """The study's precision@N: the relevant share of the top min(N, C_u) candidates.

    Each user ranks only their own held-out items (C_u of them) and a recommendation is
    accurate when the item is relevant (rated >= 4); a user with fewer than N held-out items
    is judged on all of them, which is how docs/references.md measured its floors. Ties are
    resolved in expectation as in `ranking_metrics`, so a constant scorer gets each user's
    base rate (relevant share of the held-out items) at every N.

    Args:
      scores: [U, C] float; relevant: [U, C] bool; ns: list lengths N >= 1;
      mask: optional [U, C] bool, the real candidates.

    Returns:
      [U, len(ns)] float64, NaN for users without candidates.
    """
    scores, relevant, mask = _check_scores(scores, relevant, mask)
    ns = _cutoffs(ns)
    kmax = min(max(ns), scores.shape[1])
    positions = _tie_positions(scores, relevant, mask, kmax)
    hits = np.cumsum(positions.gain, axis=1)  # [U, kmax]
    length = np.minimum(np.asarray(ns)[None, :], positions.num_candidates[:, None])  # [U, len]
    safe = np.maximum(length, 1)
    values = np.take_along_axis(hits, np.minimum(safe, kmax) - 1, axis=1) / safe
    return np.where(length > 0, values, np.nan)


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


# -- beyond accuracy -------------------------------------------------------------------------


def _check_lists(lists: np.ndarray, num_items: int) -> np.ndarray:
    lists = np.asarray(lists)
    if lists.ndim != 2:
        raise ValueError(f"recommendation lists must be [U, K], got shape {lists.shape}")
    if lists.size and (lists.min() < EMPTY or lists.max() >= num_items):
        raise ValueError(
            f"recommendation lists hold item indices in [0, {num_items}) or {EMPTY}, got "
            f"values in [{lists.min()}, {lists.max()}]"
        )
    return lists.astype(np.int64)


def catalogue_coverage(lists: np.ndarray, num_items: int) -> float:
    """Share of the catalogue that appears in at least one list.

    Args:
      lists: [U, K] int item indices, -1 = empty slot.
      num_items: catalogue size I.
    """
    lists = _check_lists(lists, num_items)
    return float(np.unique(lists[lists != EMPTY]).size / num_items)


def novelty(lists: np.ndarray, item_users: np.ndarray, num_users: int) -> float:
    """Mean self-information of the recommended items, in bits (Zhou et al., PNAS 2010).

    An item that a share p_i of the (training) users interacted with carries -log2(p_i) bits;
    an item nobody interacted with counts as if one user had (p_i = 1 / num_users), so the
    value stays finite. Averaged over every filled slot of every list.

    Args:
      lists: [U, K] int item indices, -1 = empty slot.
      item_users: [I] int, distinct training users of each item.
      num_users: users behind `item_users` (those with training interactions).

    Returns:
      Bits; NaN when every slot is empty.
    """
    item_users = np.asarray(item_users)
    lists = _check_lists(lists, item_users.size)
    items = lists[lists != EMPTY]
    if items.size == 0:
        return float("nan")
    share = np.maximum(item_users[items], 1) / num_users
    return float(np.mean(-np.log2(share)))


def intra_list_diversity(lists: np.ndarray, item_features: np.ndarray) -> float:
    """Mean over lists of the mean pairwise cosine distance 1 - cos(f_i, f_j) in the list.

    Feature vectors are e.g. genre multi-hot rows; an all-zero vector is at distance 1 from
    every item (its cosine is taken as 0). Lists with fewer than two items are left out.

    Args:
      lists: [U, K] int item indices, -1 = empty slot.
      item_features: [I, F] float.

    Returns:
      Mean distance in [0, 2]; NaN when no list has two items.
    """
    feats = np.asarray(item_features, dtype=np.float64)
    lists = _check_lists(lists, feats.shape[0])
    norms = np.linalg.norm(feats, axis=1, keepdims=True)
    unit = np.divide(feats, norms, out=np.zeros_like(feats), where=norms > 0)
    filled = lists != EMPTY  # [U, K]
    vecs = unit[np.where(filled, lists, 0)] * filled[..., None]  # [U, K, F]
    cos = np.einsum("ukf,ulf->ukl", vecs, vecs)  # [U, K, K]
    n = filled.sum(axis=1).astype(np.float64)
    pairs = n * (n - 1) / 2
    # Sum over i < j of (1 - cos) = pairs - (sum over all i, j of cos - sum of cos(i, i)) / 2.
    diag = np.einsum("ukk->uk", cos).sum(axis=1)
    distance_sum = pairs - (cos.sum(axis=(1, 2)) - diag) / 2
    keep = pairs > 0
    if not np.any(keep):
        return float("nan")
    return float(np.mean(distance_sum[keep] / pairs[keep]))


def head_items(item_counts: np.ndarray, fraction: float = 0.2) -> np.ndarray:
    """The popular head: the round(fraction * I) items with the most training interactions.

    Equal counts at the boundary go to the lower item index, so the head has exactly that
    size; every other item is in the long tail.

    Args:
      item_counts: [I] int, training interactions per item.
      fraction: share of the catalogue in the head, in [0, 1].

    Returns:
      [I] bool, True for head items.
    """
    if not 0 <= fraction <= 1:
        raise ValueError(f"head fraction must be in [0, 1], got {fraction}")
    item_counts = np.asarray(item_counts)
    size = round(fraction * item_counts.size)
    order = np.argsort(-item_counts, kind="stable")
    head = np.zeros(item_counts.size, bool)
    head[order[:size]] = True
    return head


def long_tail_share(lists: np.ndarray, head: np.ndarray) -> float:
    """Share of the filled slots of all lists that hold a long-tail (non-head) item.

    Args:
      lists: [U, K] int item indices, -1 = empty slot.
      head: [I] bool, from `head_items`.

    Returns:
      Share in [0, 1]; NaN when every slot is empty.
    """
    head = np.asarray(head, dtype=bool)
    lists = _check_lists(lists, head.size)
    items = lists[lists != EMPTY]
    if items.size == 0:
        return float("nan")
    return float(np.mean(~head[items]))
