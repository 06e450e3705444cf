"""The whole pipeline as one evaluation `Method`, with stage ablations.

`evaluate.py` measures what each stage adds by evaluating the same pipeline three times:
"pipeline-recall" (recall alone), "pipeline-rank" (+ ranking) and "pipeline" (+ reranking);
the protocols report accuracy next to coverage, novelty, diversity and long-tail share.

Two questions, two answers:
  `score_all` (full ranking, leave-one-out): the pipeline as served. Recalled candidates
      score by their position in the pipeline's final order (n - position, so 1..n); the
      items the pipeline would never show (not recalled, or excluded) score 0.
  `score` (the study's protocol, which ranks each user's own held-out items): the given
      items are the candidates, as if recall had proposed them all alike, and the enabled
      stages order them: "recall" by the fused recall score with every recaller ranking all it
      can score (`Recall.fused_scores`); "recall+rank" by xDeepFM's P(like) (the recall
      evidence, equal for all, does not reorder them); "recall+rank+rerank" by the position in
      the reranked order of the given items. So the study's protocol measures ranking and
      reranking on the same candidates as every other method.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from ml_collections import ConfigDict

from shortrec_jax.config_files import load_config_file, merge_overrides
from shortrec_jax.data.dataset import Dataset
from shortrec_jax.data.splits import concat
from shortrec_jax.interface import Method
from shortrec_jax.io import run_directory
from shortrec_jax.pipeline.config import STAGES, PipelineConfig
from shortrec_jax.pipeline.recommender import Recommender
from shortrec_jax.training.run import train_run

#: Evaluation names -> the stages each runs (an entry's "stages" field may override it).
PIPELINE_METHODS = {
    "pipeline": "recall+rank+rerank",
    "pipeline-rank": "recall+rank",
    "pipeline-recall": "recall",
}
#: The score of items the pipeline would not show, below every recalled item's (>= 1).
NOT_SHOWN = 0.0
#: Positions reranked per user in `score_all` unless a config says otherwise.
DEFAULT_LIST_LENGTH = 100


class PipelineMethod(Method):
    """Recall -> ranking -> reranking, trained on the split it is given.

    `fit` trains xDeepFM (for the ranking stages) and BERT4Rec (when a sequence config is
    given) with the project's trainer on the training part, then builds a `Recommender` whose
    recallers learn from everything `fit` saw (training and validation parts), which are also
    the stored histories whose items are never recommended again.

    Args:
      pipeline: the pipeline's knobs; its `stages` say which stages run.
      ranker_config: xDeepFM's training config; may be None only for stages="recall".
      sequence_config: BERT4Rec's training config, or None (no sequence recaller).
      workdir: where the run directories go; when None, a temporary folder removed once `fit`
        has loaded the trained runs.
      list_length: positions the reranker fills greedily per user in `score_all`; the
        candidates after them follow by boosted relevance (reranking is prefix-consistent, so
        every list up to this length is exactly the served one).
      name: the name the method is reported under.
    """

    def __init__(
        self,
        pipeline: PipelineConfig,
        ranker_config: ConfigDict | None = None,
        *,
        sequence_config: ConfigDict | None = None,
        workdir: str | Path | None = None,
        list_length: int = DEFAULT_LIST_LENGTH,
        name: str = "pipeline",
    ) -> None:
        if list_length < 1:
            raise ValueError(f"list_length={list_length} must be >= 1")
        self.name = name
        self.pipeline = pipeline
        self.ranker_config = ranker_config
        self.sequence_config = sequence_config
        self.workdir = Path(workdir) if workdir is not None else None
        self.list_length = list_length
        self.recommender: Recommender | None = None

    @classmethod
    def from_recommender(
        cls,
        recommender: Recommender,
        *,
        list_length: int = DEFAULT_LIST_LENGTH,
        name: str = "pipeline",
    ) -> PipelineMethod:
        """A method around a built recommender (no training); its data are what it saw."""
        method = cls(recommender.config, list_length=list_length, name=name)
        method.recommender = recommender
        return method

    def fit(self, train: Dataset, valid: Dataset | None = None) -> PipelineMethod:
        if self.ranker_config is None and self.pipeline.stages != "recall":
            raise ValueError(f"stages={self.pipeline.stages!r} needs a ranker_config (xDeepFM)")
        ranker_run = sequence_run = None
        with run_directory(self.workdir, prefix=f"{self.name}-") as workdir:
            if self.pipeline.stages != "recall":
                ranker_run, _ = train_run(self.ranker_config, workdir / "ranker", train, valid)
            if self.sequence_config is not None and self.pipeline.recall.sequence_quota:
                sequence = self.sequence_config
                sequence_run, _ = train_run(sequence, workdir / "sequence", train, valid)
        seen = train if valid is None else concat([train, valid])
        self.recommender = Recommender(
            seen, self.pipeline, ranker_run=ranker_run, sequence_run=sequence_run
        )
        return self

    def _fitted(self) -> Recommender:
        if self.recommender is None:
            raise RuntimeError(f"{self.name}: call fit() before scoring")
        return self.recommender

    def score_all(self, users: np.ndarray) -> np.ndarray:
        """[B, I] float32: n - position in the pipeline's order for the n shown candidates of
        each user ([B] indices), NOT_SHOWN for the rest."""
        rec = self._fitted()
        users = np.asarray(users, np.int64)
        out = np.full((users.size, rec.data.num_items), NOT_SHOWN, np.float32)
        for row, user in enumerate(users.tolist()):
            result = rec.run(rec.request(user), self.list_length)
            items = result.candidates.items[result.order]
            out[row, items] = np.arange(items.size, 0, -1)
        return out

    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """[B, C] float32 scores of given candidates ([B] users, [B, C] items) by the enabled
        stages, the candidates standing in for the recall stage's (module docstring)."""
        rec = self._fitted()
        users = np.asarray(users, np.int64)
        items = np.asarray(items, np.int64)
        out = np.zeros(items.shape, np.float32)
        for row, user in enumerate(users.tolist()):
            unique, inverse = np.unique(items[row], return_inverse=True)
            out[row] = self._given(rec, user, unique)[inverse]
        return out

    def _given(self, rec: Recommender, user: int, items: np.ndarray) -> np.ndarray:
        """[C] scores of distinct candidates `items` ([C]) for one user."""
        request = rec.request(user)
        stages = self.pipeline.stages
        if stages == "recall":
            return rec.recall.fused_scores(request.recall, items)
        rank = rec.ranker.score(user, items)
        if stages == "recall+rank":
            return rank
        order, _ = rec.reranker(items, rank, items.size)
        out = np.full(items.size, NOT_SHOWN, np.float32)
        out[order] = np.arange(order.size, 0, -1)
        return out


def make_pipeline_method(
    name: str, config: Mapping[str, Any], *, seed: int, workdir: Path | None = None
) -> PipelineMethod:
    """Builds an unfitted pipeline method for one evaluation repeat (registry glue).

    Fields of `config` (an evaluate config's methods.<name> section):
      train_config: xDeepFM's training config file (needed unless stages is "recall").
      overrides: a nested dict applied on top of it.
      sequence_config: BERT4Rec's training config file, or "" for no sequence recaller.
      sequence_overrides: a nested dict applied on top of that.
      stages: one of STAGES; "" or absent = the name's default (PIPELINE_METHODS).
      list_length: positions reranked per user in full ranking (DEFAULT_LIST_LENGTH).
      pipeline: nested overrides of `PipelineConfig` (recall / rank / rerank fields).

    Both models train with the repeat's `seed`.
    """
    config = dict(config.to_dict() if isinstance(config, ConfigDict) else config)
    if name not in PIPELINE_METHODS:
        raise ValueError(f"unknown pipeline method {name!r}; expected one of {PIPELINE_METHODS}")
    stages = config.pop("stages", "") or PIPELINE_METHODS[name]
    if stages not in STAGES:
        raise ValueError(f"methods.{name}.stages={stages!r} is not one of {STAGES}")
    overrides = dict(config.pop("pipeline", {}) or {})
    pipeline = PipelineConfig.from_dict({**overrides, "stages": stages})

    def training_config(path_key: str, overrides_key: str) -> ConfigDict | None:
        path = config.pop(path_key, "")
        extra = config.pop(overrides_key, {}) or {}
        if not path:
            return None
        loaded = load_config_file(path)
        merge_overrides(loaded, extra)
        loaded.seed = seed
        loaded.log.progress_bar = False
        return loaded

    ranker = training_config("train_config", "overrides")
    sequence = training_config("sequence_config", "sequence_overrides")
    list_length = int(config.pop("list_length", DEFAULT_LIST_LENGTH))
    if config:
        raise ValueError(f"methods.{name}: unknown fields {sorted(config)}")
    if ranker is None and stages != "recall":
        raise ValueError(f"methods.{name}: stages={stages!r} needs a train_config (xDeepFM)")
    return PipelineMethod(
        pipeline,
        ranker,
        sequence_config=sequence,
        workdir=workdir,
        list_length=list_length,
        name=name,
    )
