"""Recall: candidates from several recallers, each with a quota, fused into one union.

A recaller scores every item of the catalogue for one request (the user's history, oldest
first, as item indices); the `Recall` stage takes each recaller's `quota` best items among
those it proposes (a finite, positive-evidence score) and not yet seen, and fuses them by
reciprocal rank (Cormack et al., SIGIR 2009): an item's recall score is the sum over the
recallers that propose it of weight / (fusion_k + rank), rank counted from 1. The fused score needs
no calibration between recallers whose scores live on different scales (cosine sums, logits,
counts), and an item proposed by several recallers rises.

The recallers (the study's "rules and models"):
  item-cf   neighbours of the recent history in the item-item cosine table (Eq. 1).
  bert4rec, sasrec, ...
            a sequence run's next-item top-N after the live history (one recaller per run,
            named by its model), so a change of interest counts at the next request, without
            retraining.
  ease      EASE's scores x B of the whole history (Steck, WWW 2019), live items included.
  content   cosine between the history's content profile and each item's content vector:
            reaches items nobody has interacted with yet, and serves a new user whose only
            history is new items.
  popular   the most popular (optionally trending, time-decayed) items: the fallback for a
            user with no history.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
import scipy.sparse as sp
from absl import logging

from shortrec_jax.baselines import EASE, ItemCF
from shortrec_jax.baselines.item_tokens import item_token_counts, tf_idf
from shortrec_jax.baselines.similarity import l2_normalize_rows
from shortrec_jax.data.auto_fields import content_sources
from shortrec_jax.data.dataset import Dataset
from shortrec_jax.interface import top_k
from shortrec_jax.pipeline.config import RecallConfig
from shortrec_jax.training.run import TrainedRun
from shortrec_jax.training.scorers import SequenceScorer

SECONDS_PER_DAY = 86_400.0


@dataclasses.dataclass(frozen=True)
class RecallRequest:
    """What the recallers see of one request.

    Attributes:
      history: [n] int64 catalogue item indices, oldest first (the stored history of a known
        user, then the live history sent with the request).
      seen: [I] bool, items never to recall (everything the user has interacted with).
    """

    history: np.ndarray
    seen: np.ndarray


@dataclasses.dataclass(frozen=True)
class Candidates:
    """The fused union of the recallers' proposals, best fused score first.

    Attributes:
      items: [C] int64 catalogue item indices, distinct.
      fused: [C] float32 reciprocal-rank-fused recall score, non-increasing.
      scores: recaller name -> [C] float32 that recaller's own score of each candidate, NaN
        where it did not propose the candidate.
    """

    items: np.ndarray
    fused: np.ndarray
    scores: dict[str, np.ndarray]

    def __len__(self) -> int:
        return int(self.items.size)

    def proposers(self, position: int) -> tuple[str, ...]:
        """The recallers that proposed the candidate at `position`, in recaller order."""
        return tuple(name for name, s in self.scores.items() if not np.isnan(s[position]))


class Recaller(abc.ABC):
    """Scores the whole catalogue for one request; a non-finite score means "not proposed"."""

    name: str = "recaller"

    def __init__(self, quota: int) -> None:
        self.quota = quota

    @abc.abstractmethod
    def scores(self, request: RecallRequest) -> np.ndarray:
        """[I] float32 scores, higher = more likely; -inf where the item is not proposed."""


def recency_weights(length: int, half_life: float) -> np.ndarray:
    """[length] float32 weights of a history, oldest first: the newest weighs 1, the k-th
    newest 0.5 ** (k / half_life); all ones when half_life is 0."""
    if half_life <= 0:
        return np.ones(length, np.float32)
    age = np.arange(length - 1, -1, -1, dtype=np.float64)
    return (0.5 ** (age / half_life)).astype(np.float32)


class ItemCFRecaller(Recaller):
    """Sum of item-item cosine similarities to the recent history (binary interactions).

    score(i) = sum_j w_j S[i, j] over the last `history_length` history items j, w the recency
    weights, S the item-CF table pruned to each item's `neighbours` most similar items; items
    with no similarity to the history are not proposed.
    """

    name = "item-cf"

    def __init__(
        self,
        data: Dataset,
        quota: int,
        *,
        neighbours: int,
        history_length: int,
        recency_half_life: float,
    ) -> None:
        super().__init__(quota)
        cf = ItemCF(values="binary", aggregate="sum", k=None, max_neighbours=neighbours)
        self.table = cf.fit(data).similarity
        self.history_length = history_length
        self.recency_half_life = recency_half_life

    def scores(self, request: RecallRequest) -> np.ndarray:
        recent = request.history[-self.history_length :] if self.history_length else []
        out = np.full(self.table.num_rows, -np.inf, np.float32)
        if len(recent) == 0:
            return out
        sims = self.table.gather(np.asarray(recent)[None, :])[0]  # [L, I]: S[i, recent[l]]
        weights = recency_weights(len(recent), self.recency_half_life)
        total = weights @ sims  # [I]
        return np.where(total > 0, total, out).astype(np.float32)


class EASERecaller(Recaller):
    """EASE's scores of the whole history: x B, x the history as a binary row (Steck 2019).

    A known user with no live history gets exactly EASE's `score_all` row; items with no
    positive score are not proposed.
    """

    name = "ease"

    def __init__(self, data: Dataset, quota: int, *, l2: float) -> None:
        super().__init__(quota)
        self.ease = EASE(l2=l2).fit(data)

    def scores(self, request: RecallRequest) -> np.ndarray:
        if request.history.size == 0:
            return np.full(request.seen.size, -np.inf, np.float32)
        total = self.ease.score_history(request.history)  # [I]
        return np.where(total > 0, total, -np.inf).astype(np.float32)


def content_vectors(data: Dataset, features: Sequence[str]) -> sp.csr_array:
    """Unit content vectors of every item, one block per source (as `ContentCF` builds them).

    Token sources ("genres", "tags", "kg") are TF-IDF weighted bags, "vectors" the dense
    `item_vectors`; each block is L2-normalised so that every source counts alike, then the
    whole row. An item with no content has a zero row.

    Returns:
      [I, D] float32 CSR.
    """
    blocks = []
    for source in features:
        if source == "vectors":
            if data.item_vectors is None:
                raise ValueError(f"content feature 'vectors': {data.name!r} has no item_vectors")
            blocks.append(l2_normalize_rows(sp.csr_array(data.item_vectors)))
        else:
            counts, _ = item_token_counts(data, (source,))
            blocks.append(l2_normalize_rows(tf_idf(counts)))
    return l2_normalize_rows(sp.hstack(blocks, format="csr"))


class ContentRecaller(Recaller):
    """Cosine between the recency-weighted content profile of the history and each item.

    Items need no interactions, only content, so new items are proposed as soon as they are
    in the catalogue; items with no content overlap (cosine 0) are not proposed.
    """

    name = "content"

    def __init__(
        self,
        data: Dataset,
        quota: int,
        *,
        features: Sequence[str],
        history_length: int,
        recency_half_life: float,
    ) -> None:
        super().__init__(quota)
        self.vectors = content_vectors(data, features)  # [I, D]
        self.history_length = history_length
        self.recency_half_life = recency_half_life

    def scores(self, request: RecallRequest) -> np.ndarray:
        recent = request.history[-self.history_length :] if self.history_length else []
        out = np.full(self.vectors.shape[0], -np.inf, np.float32)
        if len(recent) == 0:
            return out
        weights = recency_weights(len(recent), self.recency_half_life)
        profile = weights @ self.vectors[np.asarray(recent)].toarray()  # [D]
        norm = np.linalg.norm(profile)
        if norm == 0:
            return out
        cosine = self.vectors @ (profile / norm)  # [I]
        return np.where(cosine > 0, cosine, out).astype(np.float32)


class PopularRecaller(Recaller):
    """Interactions per item, optionally each weighted by 0.5 ** (age / half-life) (trending).

    Ages are measured from the newest interaction of `data`, not from the wall clock, so the
    same data always give the same list. Items with no interactions are not proposed.
    """

    name = "popular"

    def __init__(self, data: Dataset, quota: int, *, half_life_days: float) -> None:
        super().__init__(quota)
        weights = np.ones(data.num_interactions, np.float64)
        if half_life_days > 0 and data.num_interactions:
            age_days = (data.timestamps.max() - data.timestamps) / SECONDS_PER_DAY
            weights = 0.5 ** (age_days / half_life_days)
        counts = np.bincount(data.items, weights=weights, minlength=data.num_items)
        self.popularity = np.where(counts > 0, counts, -np.inf).astype(np.float32)

    def scores(self, request: RecallRequest) -> np.ndarray:
        return self.popularity


class SequenceRecaller(Recaller):
    """A sequence run's next-item scores after the request's history (the live one included).

    Any registered sequence model (BERT4Rec, SASRec) through its `TrainedRun`; the recaller
    is named by the run's model. The run may have been trained on another load of the data:
    items are matched by raw id, history items the run does not know are left out of its
    input, and catalogue items it does not know are not proposed. Inputs have the run's fixed
    shape [1, max_len], so the model compiles once.
    """

    def __init__(self, run: TrainedRun, data: Dataset, quota: int) -> None:
        super().__init__(quota)
        if run.family != "sequence":
            raise ValueError(
                f"{run.workdir} is a {run.family} run; a sequence recaller needs a "
                "sequence run (BERT4Rec, SASRec)"
            )
        self.name = str(run.config.model.name)
        self.scorer = SequenceScorer(run, batch_size=1)
        index = {str(r): i for i, r in enumerate(run.item_ids.tolist())}
        # Catalogue index -> the run's item index, -1 where the run does not know the item.
        self.to_run = np.array([index.get(str(r), -1) for r in data.item_ids], np.int64)
        self.known = np.flatnonzero(self.to_run >= 0)

    def compilations(self) -> int:
        """How many input shapes the model has been compiled for (1 after the first call)."""
        return self.scorer.compilations()

    def scores(self, request: RecallRequest) -> np.ndarray:
        run_items = self.to_run[request.history]
        logits = self.scorer.score([run_items[run_items >= 0]])[0]  # [I_run]
        out = np.full(self.to_run.size, -np.inf, np.float32)
        out[self.known] = logits[self.to_run[self.known]]
        return out


class Recall:
    """The recall stage: every recaller's top `quota` unseen proposals, fused and cut.

    Args:
      recallers: the recallers, in the order their scores are reported; a quota of 0 turns
        one off.
      fusion_k: the reciprocal-rank-fusion constant.
      max_candidates: the union is cut to this many candidates by fused score.
      weights: recaller name -> its weight in the fusion (1 for those not named).
    """

    def __init__(
        self,
        recallers: Sequence[Recaller],
        fusion_k: float,
        max_candidates: int,
        weights: Mapping[str, float] | None = None,
    ) -> None:
        self.recallers = [r for r in recallers if r.quota > 0]
        self.fusion_k = fusion_k
        self.max_candidates = max_candidates
        self.weights = {r.name: (weights or {}).get(r.name, 1.0) for r in self.recallers}

    @classmethod
    def from_config(
        cls,
        data: Dataset,
        config: RecallConfig,
        sequence_runs: TrainedRun | Sequence[TrainedRun] | None = None,
    ) -> Recall:
        """The recallers `config` turns on, fitted on the interactions of `data`, with one
        sequence recaller per sequence run (their models must differ: a recaller's name is
        its model's)."""
        if isinstance(sequence_runs, TrainedRun):
            sequence_runs = [sequence_runs]
        sequence_runs = list(sequence_runs or [])
        models = [str(run.config.model.name) for run in sequence_runs]
        if len(set(models)) < len(models):
            raise ValueError(f"sequence runs of the same model {models}: one run per model")
        recallers: list[Recaller] = []
        if config.item_cf_quota:
            recallers.append(
                ItemCFRecaller(
                    data,
                    config.item_cf_quota,
                    neighbours=config.item_cf_neighbours,
                    history_length=config.history_length,
                    recency_half_life=config.recency_half_life,
                )
            )
        if config.sequence_quota:
            recallers += [
                SequenceRecaller(run, data, config.sequence_quota) for run in sequence_runs
            ]
        if config.ease_quota:
            recallers.append(EASERecaller(data, config.ease_quota, l2=config.ease_l2))
        # Of the configured content sources, those the data set has; with none, no content
        # recall (a data set of ids alone), said once in the log.
        content = [f for f in config.content_features if f in content_sources(data)]
        if config.content_quota and not content:
            logging.warning(
                "content recall off: %r has none of %s", data.name, list(config.content_features)
            )
        if config.content_quota and content:
            recallers.append(
                ContentRecaller(
                    data,
                    config.content_quota,
                    features=content,
                    history_length=config.history_length,
                    recency_half_life=config.recency_half_life,
                )
            )
        if config.popular_quota:
            recallers.append(
                PopularRecaller(
                    data, config.popular_quota, half_life_days=config.popular_half_life_days
                )
            )
        weights = {
            ItemCFRecaller.name: config.item_cf_weight,
            **{name: config.sequence_weight for name in models},
            EASERecaller.name: config.ease_weight,
            ContentRecaller.name: config.content_weight,
            PopularRecaller.name: config.popular_weight,
        }
        return cls(recallers, config.fusion_k, config.max_candidates, weights)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.recallers)

    def __call__(self, request: RecallRequest) -> Candidates:
        """The de-duplicated union of the recallers' proposals, seen items removed."""
        proposals = []
        for recaller in self.recallers:
            scores = np.where(request.seen, -np.inf, recaller.scores(request))
            available = int(np.count_nonzero(np.isfinite(scores)))
            count = min(recaller.quota, available)
            items = top_k(scores[None, :], count)[0] if count else np.zeros(0, np.int64)
            proposals.append((recaller.name, items, scores[items]))
        return self._fuse(proposals, self.max_candidates)

    def fused_scores(self, request: RecallRequest, items: np.ndarray) -> np.ndarray:
        """The fused score of given items, each recaller ranking everything it proposes.

        The recall stage's opinion of candidates it did not choose (the study's protocol
        gives each user's held-out items): quotas do not cut, so every proposed item has a
        rank; seen items and items no recaller proposes score 0.

        Args:
          request: the request.
          items: [C] int catalogue item indices.

        Returns:
          [C] float32.
        """
        out = np.zeros(items.shape, np.float64)
        for recaller in self.recallers:
            scores = np.where(request.seen, -np.inf, recaller.scores(request))
            order = np.argsort(-scores, kind="stable")  # ties by item index
            rank = np.empty(scores.size, np.int64)
            rank[order] = np.arange(1, scores.size + 1)
            proposed = np.isfinite(scores[items])
            weight = self.weights[recaller.name]
            out += np.where(proposed, weight / (self.fusion_k + rank[items]), 0.0)
        return out.astype(np.float32)

    def _fuse(
        self, proposals: Sequence[tuple[str, np.ndarray, np.ndarray]], limit: int
    ) -> Candidates:
        """Reciprocal-rank fusion of (name, items [n] best first, scores [n]) proposals."""
        all_items = [items for _, items, _ in proposals]
        union = np.unique(np.concatenate(all_items)) if all_items else np.zeros(0, np.int64)
        fused = np.zeros(union.size, np.float64)
        per_recaller = {}
        for name, items, scores in proposals:
            pos = np.searchsorted(union, items)
            fused[pos] += self.weights[name] / (self.fusion_k + np.arange(1, items.size + 1))
            own = np.full(union.size, np.nan, np.float32)
            own[pos] = scores
            per_recaller[name] = own
        order = np.argsort(-fused, kind="stable")[:limit]  # ties by item index
        return Candidates(
            items=union[order].astype(np.int64),
            fused=fused[order].astype(np.float32),
            scores={name: s[order] for name, s in per_recaller.items()},
        )
