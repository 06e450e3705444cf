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
`catalogue_coverage`, `novelty`, `intra_list_diversity` and `long_tail_share` (of the head
that `shortrec_jax.data.items.head_items` picks).

The package sits below training (which validates with AUC and rank metrics) and evaluation:
`classification.py`, `ranking.py`, `lists.py`.
"""

from shortrec_jax.metrics.classification import auc, gauc, logloss, per_user_auc
from shortrec_jax.metrics.lists import (
    EMPTY,
    catalogue_coverage,
    intra_list_diversity,
    long_tail_share,
    novelty,
)
from shortrec_jax.metrics.ranking import (
    metrics_from_ranked_lists,
    rank_metrics_from_ranks,
    ranking_metrics,
    study_precision,
)

__all__ = [
    "EMPTY",
    "auc",
    "catalogue_coverage",
    "gauc",
    "intra_list_diversity",
    "logloss",
    "long_tail_share",
    "metrics_from_ranked_lists",
    "novelty",
    "per_user_auc",
    "rank_metrics_from_ranks",
    "ranking_metrics",
    "study_precision",
]
