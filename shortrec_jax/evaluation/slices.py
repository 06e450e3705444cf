"""What the slices and beyond-accuracy metrics need from a training part, and the per-user
means they report.

  beyond accuracy  on each user's top-K list (K in `beyond_ks`): catalogue coverage, novelty,
                   intra-list diversity of `diversity_feature` vectors (genres), long-tail share
                   (see `metrics.py`); keys "coverage@K", "novelty@K", "diversity@K",
                   "long_tail@K". The lists break ties with `interface.top_k` (lower column
                   first); the accuracy metrics resolve ties in expectation instead.
  cold users       the accuracy metrics over users with at most `cold_user_max_ratings`
                   training interactions; keys "cold_users/<metric>".
  rare items       the long tail: items outside the popular head, i.e. outside the
                   `head_fraction` (20%) of the catalogue with the most training interactions
                   (`head_items`, the same split as the long-tail share); keys
                   "rare_items/<metric>".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from shortrec_jax import metrics
from shortrec_jax.data.dataset import Dataset
from shortrec_jax.data.items import head_items, item_feature_matrix

# Metric name -> value: what every measure returns.
Numbers = dict[str, float]


@dataclasses.dataclass(frozen=True)
class TrainStats:
    """What the slices and beyond-accuracy metrics need to know about a training part.

    Attributes:
      user_counts: [U] training interactions per user.
      item_users: [I] distinct training users per item (novelty).
      num_users: users with at least one training interaction.
      head: [I] bool, the popular head (`head_items`); the rest is the long tail.
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
            head=head_items(np.bincount(train.items, minlength=train.num_items), head_fraction),
            features=None
            if diversity_feature is None
            else item_feature_matrix(train, diversity_feature),
        )


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


def mean_or_nan(values: np.ndarray) -> float:
    """Mean over users; NaN for an empty slice."""
    return float(values.mean()) if values.size else float("nan")


def slice_means(
    per_user: Mapping[str, np.ndarray], rows: np.ndarray | None, prefix: str
) -> Numbers:
    """Means of per-user metrics ([U] each) over the users `rows` ([U] bool; None = all)."""
    if rows is None:
        rows = np.ones(next(iter(per_user.values())).size, bool)
    out = {f"{prefix}{name}": mean_or_nan(v[rows]) for name, v in per_user.items()}
    out[f"{prefix}users"] = float(np.count_nonzero(rows))
    return out


def metrics_named(values: Mapping[str, np.ndarray], names: Sequence[str]) -> dict[str, np.ndarray]:
    """The entries of `values` whose metric name (before "@") is one of `names`."""
    return {k: v for k, v in values.items() if k.split("@")[0] in names}
