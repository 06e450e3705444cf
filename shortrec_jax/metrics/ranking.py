"""Top-K ranking metrics on host NumPy arrays, with the exact expectation over tied scores.

See the package docstring (`shortrec_jax.metrics`) for the definitions and the tie rule.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from shortrec_jax.interface import top_k


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
