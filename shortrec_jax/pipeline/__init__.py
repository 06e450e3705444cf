"""Recall -> ranking -> reranking: the study's information flow as a library call.

`Recommender.from_runs(ranker_workdir=ranker_run, sequence_workdir=[bert4rec_run, sasrec_run])
.recommend(user="196")` returns the top-K items with every stage's score. The stages live in
`recall.py`, `rank.py` (xDeepFM), `ranker.py` with `ranker_data.py` (the trained ranker) and
`rerank.py`, every knob in `config.py`; `ranker_run.py` saves, loads and serves the trained
ranker, `train_ranker.py` is its training command; `method.py` evaluates the pipeline with
`evaluate.py`; `service.py` serves it over HTTP (the `serve` extra).
"""

from shortrec_jax.pipeline.config import (
    STAGES,
    PipelineConfig,
    RankConfig,
    RecallConfig,
    RerankConfig,
)
from shortrec_jax.pipeline.recommender import Recommendation, Recommender, UnknownItemsError

__all__ = [
    "STAGES",
    "PipelineConfig",
    "RankConfig",
    "RecallConfig",
    "Recommendation",
    "Recommender",
    "RerankConfig",
    "UnknownItemsError",
]
