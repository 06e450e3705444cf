"""Item-side helpers that the pipeline and the evaluation share: the head and item vectors."""

from __future__ import annotations

import numpy as np

from shortrec_jax.data.dataset import Dataset


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


def item_feature_matrix(ds: Dataset, feature: str) -> np.ndarray:
    """Item vectors for diversity and the reranker: a multi-hot column (e.g. "genres") or
    "vectors".

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
