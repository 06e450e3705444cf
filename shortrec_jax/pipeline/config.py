"""Every knob of the recall -> ranking -> reranking pipeline, with its default.

`PipelineConfig` is frozen and nested by stage (`recall`, `rank`, `rerank`). It is built from
the defaults below, from a nested mapping (`PipelineConfig.from_dict`, e.g. an evaluate
config's `methods.pipeline.pipeline` section: unknown keys are an error naming them), or from
the command line through `config_dict()` (`--pipeline.rerank.mmr_lambda=0.5`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ml_collections import ConfigDict

from shortrec_jax.config_files import check_fields

#: The stage ablations: recall alone, + ranking, + reranking.
STAGES = ("recall", "recall+rank", "recall+rank+rerank")
#: The list length of a request that names none.
DEFAULT_K = 10
#: Content sources of the content recaller (those of `baselines.ContentCF`).
CONTENT_SOURCES = ("genres", "tags", "kg", "vectors")


@dataclasses.dataclass(frozen=True)
class RecallConfig:
    """Candidate generation: several recallers, each with a quota, fused by reciprocal rank.

    The defaults were chosen on MovieLens 100K (full ranking, one split): item-CF over the whole
    recent history, evenly weighted, recalls best; content and popularity fill in with lower
    weights. Interest changes reach the list through the sequence recaller, which reads the
    latest items first; a recency half-life makes item-CF and content follow them too, at some
    cost in accuracy on random splits.

    Attributes:
      history_length: the most recent history items that seed the item-CF and content
        recallers (a bound keeps a request's cost flat).
      recency_half_life: in items: the k-th most recent history item weighs 0.5 ** (k / this)
        in the item-CF and content seeds; 0 = equal weights.
      item_cf_quota: candidates from item-CF neighbours of the history (0 = off).
      item_cf_neighbours: neighbours kept per item in the item-item cosine table (the classic
        top-N scheme of Deshpande and Karypis, TOIS 2004).
      sequence_quota: candidates from each sequence run's next-item scores on the live
        history (BERT4Rec, SASRec, any registered sequence model; 0 = off; used only with
        sequence runs). Each run is a recaller named by its model ("bert4rec", "sasrec").
      ease_quota: candidates from EASE (Steck, WWW 2019) on the whole history, live items
        included (0 = off: EASE inverts a dense [I, I] matrix at start-up, which large
        catalogues cannot afford; on MovieLens 100K it is the strongest single recaller).
      ease_l2: EASE's L2 penalty lambda.
      content_quota: candidates by cosine between the history's content profile and each item's
        content (also items nobody has interacted with yet; 0 = off).
      content_features: content sources, from CONTENT_SOURCES.
      popular_quota: the most popular (or trending) items, the fallback for users with no
        history (0 = off).
      popular_half_life_days: 0 counts every interaction alike; > 0 weighs each interaction by
        0.5 ** (age / half-life), its age measured from the newest interaction of the data, so
        the recaller proposes what is trending rather than what was ever popular.
      item_cf_weight, sequence_weight, ease_weight, content_weight, popular_weight: each
        recaller's weight w in the fusion, sum over recallers of w / (k + rank)
        (sequence_weight is every sequence recaller's).
      fusion_k: the constant k of reciprocal-rank fusion (Cormack et al., SIGIR 2009, who
        found k = 60 robust).
      max_candidates: the union is cut to this many candidates by fused score.
    """

    history_length: int = 200
    recency_half_life: float = 0.0
    item_cf_quota: int = 200
    item_cf_neighbours: int = 100
    sequence_quota: int = 100
    ease_quota: int = 0
    ease_l2: float = 500.0
    content_quota: int = 50
    content_features: tuple[str, ...] = ("genres",)
    popular_quota: int = 50
    popular_half_life_days: float = 0.0
    item_cf_weight: float = 1.0
    sequence_weight: float = 1.0
    ease_weight: float = 1.0
    content_weight: float = 0.1
    popular_weight: float = 0.25
    fusion_k: float = 60.0
    max_candidates: int = 512

    def __post_init__(self) -> None:
        non_negative = {
            "history_length": self.history_length,
            "item_cf_quota": self.item_cf_quota,
            "sequence_quota": self.sequence_quota,
            "ease_quota": self.ease_quota,
            "content_quota": self.content_quota,
            "popular_quota": self.popular_quota,
            "recency_half_life": self.recency_half_life,
            "popular_half_life_days": self.popular_half_life_days,
            "item_cf_weight": self.item_cf_weight,
            "sequence_weight": self.sequence_weight,
            "ease_weight": self.ease_weight,
            "content_weight": self.content_weight,
            "popular_weight": self.popular_weight,
            "fusion_k": self.fusion_k,
        }
        negative = {k: v for k, v in non_negative.items() if v < 0}
        if negative:
            raise ValueError(f"recall: {negative} must be >= 0")
        if self.ease_l2 <= 0:
            raise ValueError(f"recall.ease_l2={self.ease_l2} must be > 0")
        if self.item_cf_neighbours < 1 or self.max_candidates < 1:
            raise ValueError(
                f"recall: item_cf_neighbours={self.item_cf_neighbours} and max_candidates="
                f"{self.max_candidates} must be >= 1"
            )
        unknown = [f for f in self.content_features if f not in CONTENT_SOURCES]
        if unknown or (self.content_quota and not self.content_features):
            raise ValueError(
                f"recall.content_features={self.content_features!r} must be a non-empty subset "
                f"of {CONTENT_SOURCES}"
            )


@dataclasses.dataclass(frozen=True)
class RankConfig:
    """Ranking: a trained ranker (`pipeline/ranker_run.py`) or xDeepFM.

    The ranking model is the run the pipeline is built with: a trained ranker orders the
    candidates by its own final score (`pipeline/ranker.py`: P(watch), or P(watch and like));
    xDeepFM by the product below.

    Attributes:
      batch_size: candidates per xDeepFM call. Every call has this shape (the candidate
        list is padded to a multiple of it), so the model compiles once, whatever a request's
        candidate count. (A trained ranker's calls have the fixed shape it was trained with.)
      recall_exponent: xDeepFM only: candidates are ordered by P(like) x (fused / largest
        fused) ** this. xDeepFM learns from rated pairs, so it predicts whether a user likes
        an item once seen, not whether the user would watch it at all; the recall evidence
        (who watched what together, what is popular) supplies that. 0 = P(like) alone.
    """

    batch_size: int = 256
    recall_exponent: float = 2.0

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.recall_exponent < 0:
            raise ValueError(
                f"rank.batch_size={self.batch_size} must be >= 1 and rank.recall_exponent="
                f"{self.recall_exponent} >= 0"
            )


@dataclasses.dataclass(frozen=True)
class RerankConfig:
    """Reranking strategies, applied in this order: exclusions, novelty and long-tail boost,
    then a greedy selection with MMR diversity under per-category caps.

    Attributes:
      exclude_items: raw item ids never shown (withdrawn videos, blocked content).
      novelty_weight: adds weight x the item's self-information -log2(share of users who
        interacted with it), divided by its maximum log2(users) so that it lies in [0, 1];
        items nobody interacted with get 1 (0 = off).
      long_tail_weight: adds this to items outside the popular head (the `head_fraction` of
        the catalogue with the most interactions; 0 = off).
      head_fraction: the share of the catalogue counted as the popular head.
      mmr_lambda: maximal marginal relevance (Carbonell and Goldstein, SIGIR 1998): each next
        item maximises lambda x relevance - (1 - lambda) x its largest cosine similarity to the
        items already chosen; 1 = relevance only.
      diversity_feature: the item vectors of that similarity: a multi-hot item column (e.g.
        "genres") or "vectors" (`Dataset.item_vectors`).
      max_per_category: at most this many items per category value in the list (0 = off);
        when no remaining item fits the caps, the best remaining item is taken anyway.
      category_feature: the categories: a multi-hot item column (an item counts towards each
        of its values, e.g. each genre) or a categorical item column.
    """

    exclude_items: tuple[str, ...] = ()
    novelty_weight: float = 0.05
    long_tail_weight: float = 0.0
    head_fraction: float = 0.2
    mmr_lambda: float = 0.8
    diversity_feature: str = "genres"
    max_per_category: int = 0
    category_feature: str = "genres"

    def __post_init__(self) -> None:
        if not 0.0 <= self.mmr_lambda <= 1.0:
            raise ValueError(f"rerank.mmr_lambda={self.mmr_lambda} must be in [0, 1]")
        if self.novelty_weight < 0 or self.long_tail_weight < 0 or self.max_per_category < 0:
            raise ValueError(
                f"rerank: novelty_weight={self.novelty_weight}, long_tail_weight="
                f"{self.long_tail_weight} and max_per_category={self.max_per_category} must "
                "be >= 0"
            )
        if not 0.0 < self.head_fraction < 1.0:
            raise ValueError(f"rerank.head_fraction={self.head_fraction} must be in (0, 1)")


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """The whole pipeline.

    Attributes:
      recall, rank, rerank: the stages' settings.
      stages: which stages run, one of STAGES ("recall+rank" skips reranking).
      max_k: the longest list a request may ask for (the HTTP service answers 422 above it).
      max_history: the longest live history a request may send.
    """

    recall: RecallConfig = RecallConfig()
    rank: RankConfig = RankConfig()
    rerank: RerankConfig = RerankConfig()
    stages: str = "recall+rank+rerank"
    max_k: int = 100
    max_history: int = 1_000

    def __post_init__(self) -> None:
        if self.stages not in STAGES:
            raise ValueError(f"stages={self.stages!r} is not one of {STAGES}")
        if self.max_k < 1 or self.max_history < 1:
            raise ValueError(f"max_k={self.max_k} and max_history={self.max_history} must be >= 1")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> PipelineConfig:
        """A config from a nested mapping of overrides (a ConfigDict too); unknown keys fail.

        A tuple field also takes a list (JSON) or a comma-separated string (command line).
        """
        if isinstance(values, ConfigDict):
            values = values.to_dict()
        return _build(cls, values, "")

    def to_dict(self) -> dict[str, Any]:
        """The nested plain-dict form (tuples kept)."""
        return dataclasses.asdict(self)


def config_dict(config: PipelineConfig | None = None) -> ConfigDict:
    """`config` (default: the defaults) as a ConfigDict, for command-line overrides."""
    return ConfigDict((config or PipelineConfig()).to_dict())


def _build(cls: type, values: Mapping[str, Any], prefix: str) -> Any:
    """Instantiates dataclass `cls` from `values`, recursing into nested dataclass fields."""
    check_fields(cls, values, f"pipeline.{prefix}".rstrip("."))
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        default = fields[name].default
        if dataclasses.is_dataclass(default):
            if not isinstance(value, Mapping):
                raise ValueError(f"pipeline config: {prefix}{name} must be a mapping of fields")
            kwargs[name] = _build(type(default), value, f"{prefix}{name}.")
        elif isinstance(default, tuple):
            # The command line gives "a,b" (ml_collections may wrap it as ("a,b",)).
            items = value if isinstance(value, list | tuple) else (value,)
            parts = (p.strip() for v in items for p in str(v).split(","))
            kwargs[name] = tuple(p for p in parts if p)
        else:
            kwargs[name] = value
    return cls(**kwargs)
