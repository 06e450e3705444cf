"""`Recommender`: a request -> recall -> ranking -> reranking -> top-K with every stage's score.

The study's information flow (its Fig. 1): a request is analysed (user, live history,
demographics), candidates are recalled from the catalogue by rules and models, ranked, reranked
by strategy, and served. Built from trained run directories and the data set's side
information; nothing is trained at serving time.

Ranking is one of two models, whichever run the pipeline is built with:
  - a trained ranker (`ranker_run.TrainedRanker`, trained for ranking on held-out slices of
    the history: `python -m shortrec_jax.pipeline.train_ranker`): candidates are ordered by the
    model's own final score, which is each item's `rank_score` and, without reranking, its
    `score`. It knows the users of its data set; a new user is served by the cold-start path:
    the recall order (popular, content, sequence and EASE recallers on the live history),
    then reranking. Its features come from the stored history (the live one steers recall).
  - xDeepFM or Wide & Deep (`rank.Ranker`): P(like) x (fused / largest fused) ** exponent
    (`RankConfig.recall_exponent`), every user ranked (a new one by demographics).
Reranking receives the ranking stage's order as relevance in [0, 1]: the trained ranker's
score (and a new user's fused recall score) divided by the candidates' largest, so that its
weights mean the same whatever the model; xDeepFM's product as is.

Requests. `recommend(user=..., history=..., k=..., demographics=...)`:
  - `user`: a raw user id. A user the data set knows brings their stored history (time
    order) and features; any other id is a new user, never an error.
  - `history`: raw item ids, oldest first, the live history: appended to the stored one, so
    what the user just watched steers the sequence, item-CF and content recallers at once.
    Every id must be in the catalogue (`UnknownItemsError` otherwise: an id the catalogue
    lacks is a client error, not something to guess around). Catalogue items nobody has
    interacted with are fine: the content recaller and the ranker's content features
    handle them.
  - `demographics`: user columns of the ranking model (e.g. age, gender, occupation) for a
    new user, or to update a known user's.
  Items already seen (stored or live history) are never recommended.

Thread safety: a `Recommender` holds no per-request state, so one instance serves
concurrent requests (the HTTP service calls it from a thread pool).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shortrec_jax.data.dataset import Dataset
from shortrec_jax.data.sequences import SequenceData
from shortrec_jax.pipeline.config import DEFAULT_K, STAGES, PipelineConfig
from shortrec_jax.pipeline.rank import Ranker
from shortrec_jax.pipeline.ranker_run import TrainedRanker, load_ranker
from shortrec_jax.pipeline.recall import Candidates, Recall, RecallRequest, SequenceRecaller
from shortrec_jax.pipeline.rerank import Reranker
from shortrec_jax.training.run import TrainedRun, load_run

RawId = str | int


class UnknownItemsError(ValueError):
    """A history names item ids the catalogue does not have.

    Attributes:
      item_ids: the unknown raw ids, in request order, each once.
    """

    def __init__(self, item_ids: Sequence[str]) -> None:
        self.item_ids = list(item_ids)
        super().__init__(f"history has item ids the catalogue does not know: {self.item_ids}")


@dataclasses.dataclass(frozen=True)
class Recommendation:
    """One recommended item with the score every stage gave it.

    Attributes:
      item_id: the raw item id.
      title: its title ("" where the data set has none).
      score: the final score, the one the list is ordered by (the last stage's).
      recall_score: the reciprocal-rank-fused recall score.
      recall_scores: recaller name -> its own score, for each recaller that proposed the item.
      recallers: the recallers that proposed it.
      rank_score: the ranking model's score (the trained ranker's final score, or xDeepFM's
        P(like)), or None when ranking did not run (or a new user met a trained ranker).
      rerank_score: the reranking objective it was chosen with, or None when reranking did
        not run.
    """

    item_id: str
    title: str
    score: float
    recall_score: float
    recall_scores: dict[str, float]
    recallers: tuple[str, ...]
    rank_score: float | None
    rerank_score: float | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        out = dataclasses.asdict(self)
        out["recallers"] = list(self.recallers)
        return out


@dataclasses.dataclass(frozen=True)
class Request:
    """A request resolved to catalogue indices.

    Attributes:
      user: the user's index in the data set, -1 for a new user.
      recall: what the recallers see (history, seen items).
      demographics: user column -> value (strings) for the ranker.
    """

    user: int
    recall: RecallRequest
    demographics: dict[str, str]


@dataclasses.dataclass(frozen=True)
class StageResult:
    """What each stage made of one request.

    Attributes:
      candidates: the recall stage's union (C candidates).
      rank_scores: [C] float32 the ranking model's scores, or None without ranking (and for
        a new user under a trained ranker: the cold-start path).
      rerank_scores: [C'] float32 reranking objective in `order`, or None without reranking.
      order: [C'] int64 positions into the candidates, best first (C' < C when reranking
        excluded some).
      final: [C'] float32 the score each position is ordered by.
    """

    candidates: Candidates
    rank_scores: np.ndarray | None
    rerank_scores: np.ndarray | None
    order: np.ndarray
    final: np.ndarray


class Recommender:
    """The recall -> ranking -> reranking pipeline over one catalogue.

    Args:
      data: the catalogue and its side information (titles, genres, user features) and the
        interactions the recallers learn from and the stored histories come from.
      config: every knob (defaults: `PipelineConfig()`).
      ranker_run: the ranking model: a trained ranker fitted on `data`'s users and items
        (`ranker_run.load_ranker`), or a trained xDeepFM or Wide & Deep run; None allows only
        stages="recall".
      sequence_run: trained sequence runs (BERT4Rec, SASRec, ...; one or a sequence), each a
        recaller named by its model, or None.
    """

    def __init__(
        self,
        data: Dataset,
        config: PipelineConfig | None = None,
        *,
        ranker_run: TrainedRanker | TrainedRun | None = None,
        sequence_run: TrainedRun | Sequence[TrainedRun] | None = None,
    ) -> None:
        self.data = data
        self.config = config or PipelineConfig()
        if ranker_run is None and self.config.stages != "recall":
            raise ValueError(f"stages={self.config.stages!r} needs a ranking run (ranker_run)")
        self.recall = Recall.from_config(data, self.config.recall, sequence_run)
        self.ranker: TrainedRanker | Ranker | None
        if isinstance(ranker_run, TrainedRanker):
            ranker_run.check_catalogue(data)
            self.ranker = ranker_run
        elif ranker_run is not None:
            self.ranker = Ranker(ranker_run, data, self.config.rank.batch_size)
        else:
            self.ranker = None
        self.reranker = Reranker.from_config(data, self.config.rerank)
        self._histories = SequenceData.from_dataset(data)

    @classmethod
    def from_runs(
        cls,
        workdir: str | Path | None = None,
        data: Dataset | None = None,
        *,
        sequence_workdir: str | Path | Sequence[str | Path] | None = None,
        ranker_workdir: str | Path | None = None,
        config: PipelineConfig | None = None,
    ) -> Recommender:
        """A recommender from run directories.

        Args:
          workdir: an xDeepFM (or Wide & Deep) run directory, the ranking model; or None.
          data: the catalogue and interactions; None loads the ranking run's data source
            (its config's data section), every interaction of it: serving learns from all the
            logs, not from one split's training part.
          sequence_workdir: sequence run directories (BERT4Rec, SASRec; one or several), or
            None.
          ranker_workdir: a trained ranker's run directory (`ranker_run`), the ranking model
            instead of `workdir`; or None.
          config: the pipeline's knobs.
        """
        if workdir is not None and ranker_workdir is not None:
            raise ValueError("give one ranking model: an xDeepFM workdir or a ranker_workdir")
        if isinstance(sequence_workdir, str | Path):
            sequence_workdir = [sequence_workdir]
        sequence_runs = [load_run(path) for path in sequence_workdir or []]
        ranker: TrainedRanker | TrainedRun | None = None
        if workdir is not None:
            ranker = load_run(workdir)
            data = data if data is not None else ranker.source_data()
        elif ranker_workdir is not None:
            ranker = load_ranker(ranker_workdir, data)
            data = ranker.data
        elif data is None and sequence_runs:
            data = sequence_runs[0].source_data()
        if data is None:
            raise ValueError("no data and no run to load its data source from")
        return cls(data, config, ranker_run=ranker, sequence_run=sequence_runs)

    # -- what it offers ----------------------------------------------------------------------

    @property
    def recallers(self) -> tuple[str, ...]:
        """The names of the recallers in use, in report order."""
        return self.recall.names

    @property
    def ranking_model(self) -> str | None:
        """The ranking model: "trained" (a trained ranker), "xdeepfm" (a CTR run) or None."""
        if self.ranker is None:
            return None
        return "trained" if isinstance(self.ranker, TrainedRanker) else "xdeepfm"

    @property
    def demographic_fields(self) -> tuple[str, ...]:
        """The demographic columns a request may give (none without a ranking model)."""
        return () if self.ranker is None else self.ranker.demographic_fields

    def knows_user(self, user: RawId) -> bool:
        """Whether the data set has this raw user id (else it is served as a new user)."""
        try:
            self.data.user_index(user)
        except KeyError:
            return False
        return True

    def compilations(self) -> dict[str, int]:
        """Compiled input shapes per device model (1 each once warm; never more)."""
        out = {}
        if self.ranker is not None:
            out["rank"] = self.ranker.compilations()
        for recaller in self.recall.recallers:
            if isinstance(recaller, SequenceRecaller):
                out[recaller.name] = recaller.compilations()
        return out

    def warm_up(self) -> None:
        """Compiles the device models with one request (a new user with no history), and the
        trained ranker, which that request does not reach, with one call."""
        self.recommend(user=None, history=[], k=1)
        if isinstance(self.ranker, TrainedRanker):
            self.ranker.warm_up()

    # -- requests ------------------------------------------------------------------------------

    def resolve(
        self,
        user: RawId | None = None,
        history: Sequence[RawId] | None = None,
        demographics: Mapping[str, RawId] | None = None,
    ) -> Request:
        """Turns raw ids into catalogue indices (see the module docstring for the policy).

        Raises:
          ValueError: neither a user nor a history, or a history longer than max_history.
          UnknownItemsError: history ids the catalogue does not have.
          rank.UnknownDemographicError: demographic fields the ranking model does not use.
        """
        if user is None and history is None:
            raise ValueError("a request needs a user, a history, or both")
        history = list(history or [])
        if len(history) > self.config.max_history:
            raise ValueError(
                f"history has {len(history)} items; at most {self.config.max_history} allowed"
            )
        # A user the data set does not know is a new user, served from the live history and
        # demographics alone.
        index = self.data.user_index(user) if user is not None and self.knows_user(user) else -1
        live, unknown = [], []
        for raw in history:
            try:
                live.append(self.data.item_index(raw))
            except KeyError:
                unknown.append(str(raw))
        if unknown:
            raise UnknownItemsError(list(dict.fromkeys(unknown)))
        return self.request(index, np.asarray(live, np.int64), demographics)

    def request(
        self,
        user: int,
        live: np.ndarray | None = None,
        demographics: Mapping[str, RawId] | None = None,
    ) -> Request:
        """A request from catalogue indices (what `resolve` builds from raw ids).

        Args:
          user: the user's index in the data set, or -1 for a new user.
          live: [n] int item indices of the live history, oldest first.
          demographics: user column -> value.
        """
        stored = self._histories.history(user) - 1 if user >= 0 else np.zeros(0, np.int64)
        live = np.zeros(0, np.int64) if live is None else np.asarray(live, np.int64)
        items = np.concatenate([stored, live]).astype(np.int64)
        seen = np.zeros(self.data.num_items, bool)
        seen[items] = True
        demographics = {str(k): str(v) for k, v in (demographics or {}).items()}
        if demographics:
            if self.ranker is None:
                raise ValueError("demographics need a ranking model; this pipeline has none")
            self.ranker.check_demographics(demographics)
        return Request(user, RecallRequest(history=items, seen=seen), demographics)

    def run(self, request: Request, depth: int, stages: str | None = None) -> StageResult:
        """Every stage on one request.

        Args:
          request: from `resolve`.
          depth: how many positions reranking fills greedily (the list length asked for).
          stages: one of config.STAGES; None = the config's.

        Returns:
          The stages' results, the full order of the candidates (its first `depth` are the
          list).
        """
        stages = stages or self.config.stages
        if stages not in STAGES:
            raise ValueError(f"stages={stages!r} is not one of {STAGES}")
        if stages != "recall" and self.ranker is None:
            raise ValueError(f"stages={stages!r} needs a ranking model; this pipeline has none")
        cands = self.recall(request.recall)
        if stages == "recall":
            order = np.arange(len(cands), dtype=np.int64)
            return StageResult(cands, None, None, order, cands.fused)
        trained = isinstance(self.ranker, TrainedRanker)
        if trained and request.user < 0:
            # Cold start: the trained ranker knows nothing of a new user; the recall order.
            rank, relevance = None, cands.fused
        elif trained:
            rank = self.ranker.score(request.user, cands.items, request.demographics)
            relevance = rank
        else:
            rank = self.ranker.score(request.user, cands.items, request.demographics)
            relevance = self.relevance(rank, cands.fused)
        if stages == "recall+rank":
            # Ties go to the better-recalled candidate (candidates come in fused-score order).
            order = np.argsort(-relevance, kind="stable").astype(np.int64)
            return StageResult(cands, rank, None, order, relevance[order])
        if trained:
            relevance = relevance / max(
                float(relevance.max(initial=0.0)), np.finfo(np.float32).tiny
            )
        order, rerank = self.reranker(cands.items, relevance.astype(np.float32), depth)
        return StageResult(cands, rank, rerank, order, rerank)

    def relevance(self, rank: np.ndarray, fused: np.ndarray) -> np.ndarray:
        """What xDeepFM's ranking stage orders by: P(like) x (fused / largest fused) ** exponent.

        Args:
          rank: [C] xDeepFM's P(like); fused: [C] the fused recall scores.

        Returns:
          [C] float32 (P(like) itself when rank.recall_exponent is 0).
        """
        exponent = self.config.rank.recall_exponent
        if exponent == 0 or fused.size == 0:
            return rank.astype(np.float32)
        share = fused / max(float(fused.max()), np.finfo(np.float32).tiny)
        return (rank * share**exponent).astype(np.float32)

    def recommend(
        self,
        user: RawId | None = None,
        history: Sequence[RawId] | None = None,
        k: int = DEFAULT_K,
        demographics: Mapping[str, RawId] | None = None,
        *,
        stages: str | None = None,
    ) -> list[Recommendation]:
        """The top-k items for a user and/or a live history, with every stage's score.

        Args:
          user: a raw user id (known or new), or None.
          history: raw item ids, oldest first, or None.
          k: list length, 1 <= k <= config.max_k; fewer items come back when fewer unseen
            candidates exist.
          demographics: user column -> value for the ranking model (`demographic_fields`).
          stages: one of config.STAGES; None = the config's.

        Raises:
          ValueError: a bad k, no user and no history, too long a history, unknown
            demographic fields; `UnknownItemsError` for history ids not in the catalogue.
        """
        if isinstance(k, bool) or not isinstance(k, int | np.integer):
            raise ValueError(f"k must be an integer, got {k!r}")
        if not 1 <= k <= self.config.max_k:
            raise ValueError(f"k={k} must be in [1, {self.config.max_k}]")
        result = self.run(self.resolve(user, history, demographics), int(k), stages)
        return [
            self._result(result, int(p), float(s))
            for p, s in zip(result.order[:k], result.final[:k], strict=True)
        ]

    def _result(self, result: StageResult, position: int, final: float) -> Recommendation:
        cands = result.candidates
        item = int(cands.items[position])
        titles = self.data.item_titles
        scores = {
            name: float(s[position])
            for name, s in cands.scores.items()
            if not np.isnan(s[position])
        }
        return Recommendation(
            item_id=str(self.data.item_ids[item]),
            title="" if titles is None else str(titles[item]),
            score=final,
            recall_score=float(cands.fused[position]),
            recall_scores=scores,
            recallers=cands.proposers(position),
            rank_score=None if result.rank_scores is None else float(result.rank_scores[position]),
            rerank_score=None if result.rerank_scores is None else final,
        )
