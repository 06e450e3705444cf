"""Beyond accuracy, on recommendation lists [U, K] of item indices, -1 an empty slot.

Catalogue coverage, novelty, intra-list diversity and the long-tail share (the head from
`shortrec_jax.data.items.head_items`).
"""

from __future__ import annotations

import numpy as np

EMPTY = -1  # an empty slot of a recommendation list (the user had fewer than K candidates)


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
