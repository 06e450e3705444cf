"""Reranking: composable strategies that turn ranked candidates into the list a user sees.

The study's introduction names what ranking by predicted preference alone gets wrong: the
filter bubble (lists of near-duplicates), the long tail that never surfaces, items that must
never be shown. Each strategy addresses one, and `Reranker` applies them in a fixed order:

  1. `Exclusion`      drops items that must never be shown.
  2. `NoveltyBoost`   adds to the relevance of rarely seen items (self-information) and of
                      items outside the popular head (long tail).
  3. greedy selection, one item at a time, of the candidate that maximises the objective
     under the constraints:
     `MMR`           maximal marginal relevance (Carbonell and Goldstein, SIGIR 1998):
                     lambda x relevance - (1 - lambda) x the largest cosine similarity to the
                     items already chosen.
     `CategoryCap`   at most N items per category value; when nothing left fits, the best
                     remaining item is taken anyway, so a list is never cut short.

Greedy selection is prefix-consistent: the first k items do not depend on how long the list
is, so a request for k items gets the first k of any longer list.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from absl import logging

from shortrec_jax.data.dataset import Dataset
from shortrec_jax.data.items import head_items, item_feature_matrix
from shortrec_jax.pipeline.config import RerankConfig


@dataclasses.dataclass(frozen=True)
class Exclusion:
    """Items never shown.

    Attributes:
      items: [I] bool, True for an excluded catalogue item.
    """

    items: np.ndarray

    def keep(self, candidates: np.ndarray) -> np.ndarray:
        """[C] bool, False for the excluded candidates ([C] int item indices)."""
        return ~self.items[candidates]


@dataclasses.dataclass(frozen=True)
class NoveltyBoost:
    """relevance + novelty_weight x novelty + long_tail_weight x [item outside the head].

    Attributes:
      novelty: [I] float32 in [0, 1], self-information -log2(share of users who interacted)
        divided by log2(users); 1 for items nobody interacted with.
      tail: [I] bool, items outside the popular head.
      novelty_weight, long_tail_weight: the weights.
    """

    novelty: np.ndarray
    tail: np.ndarray
    novelty_weight: float
    long_tail_weight: float

    @classmethod
    def of(
        cls, data: Dataset, novelty_weight: float, long_tail_weight: float, head_fraction: float
    ) -> NoveltyBoost:
        """The boost from the interactions of `data`."""
        pairs = np.unique(data.users.astype(np.int64) * data.num_items + data.items)
        item_users = np.bincount(pairs % data.num_items, minlength=data.num_items)
        num_users = max(2, int(np.unique(data.users).size))  # log2(1) would divide by 0
        share = np.maximum(item_users, 1) / num_users
        novelty = np.clip(-np.log2(share) / np.log2(num_users), 0.0, 1.0).astype(np.float32)
        counts = np.bincount(data.items, minlength=data.num_items)
        tail = ~head_items(counts, head_fraction)
        return cls(novelty, tail, novelty_weight, long_tail_weight)

    def __call__(self, candidates: np.ndarray, relevance: np.ndarray) -> np.ndarray:
        """[C] boosted relevance of [C] candidates with [C] relevance."""
        boost = self.novelty_weight * self.novelty[candidates]
        boost = boost + self.long_tail_weight * self.tail[candidates]
        return (relevance + boost).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class MMR:
    """Maximal marginal relevance over item feature vectors.

    Attributes:
      unit: [I, F] float32 L2-normalised item vectors (zero rows for items without features,
        which are then similar to nothing).
      lam: lambda in [0, 1]; 1 = relevance only.
    """

    unit: np.ndarray
    lam: float

    @classmethod
    def of(cls, data: Dataset, feature: str, lam: float) -> MMR:
        """Vectors from a multi-hot item column of `data` or its "vectors"."""
        vectors = item_feature_matrix(data, feature).astype(np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        unit = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
        return cls(unit, lam)


@dataclasses.dataclass(frozen=True)
class CategoryCap:
    """At most `cap` items per category value.

    Attributes:
      members: [I, G] bool, the categories of each item (several for a multi-hot column).
      cap: the most items of one category in a list.
    """

    members: np.ndarray
    cap: int

    @classmethod
    def of(cls, data: Dataset, feature: str, cap: int) -> CategoryCap:
        """Categories from a multi-hot or a categorical item column of `data`."""
        if feature in data.item_multi_hot:
            return cls(item_feature_matrix(data, feature) > 0, cap)
        if feature in data.item_categorical:
            values = data.item_categorical[feature]
            vocab, codes = np.unique(values, return_inverse=True)
            members = np.zeros((data.num_items, vocab.size), bool)
            members[np.arange(data.num_items), codes] = True
            members[:, vocab == ""] = False  # a missing value is no category
            return cls(members, cap)
        raise ValueError(
            f"category_feature={feature!r} is neither a multi-hot item column "
            f"{sorted(data.item_multi_hot)} nor a categorical one {sorted(data.item_categorical)}"
        )


class Reranker:
    """Orders ranked candidates with the configured strategies.

    Args:
      exclusion, boost, mmr, caps: the strategies; None turns one off.
    """

    def __init__(
        self,
        exclusion: Exclusion | None = None,
        boost: NoveltyBoost | None = None,
        mmr: MMR | None = None,
        caps: CategoryCap | None = None,
    ) -> None:
        self.exclusion = exclusion
        self.boost = boost
        self.mmr = mmr
        self.caps = caps

    @classmethod
    def from_config(cls, data: Dataset, config: RerankConfig) -> Reranker:
        """The strategies `config` turns on, with statistics from the interactions of `data`.

        Raises:
          ValueError: an excluded item id the catalogue does not have, or a feature column
            `data` lacks (naming it).
        """
        exclusion = None
        if config.exclude_items:
            index = {str(r): i for i, r in enumerate(data.item_ids.tolist())}
            missing = [r for r in config.exclude_items if r not in index]
            if missing:
                raise ValueError(f"rerank.exclude_items: unknown item ids {missing}")
            excluded = np.zeros(data.num_items, bool)
            excluded[[index[r] for r in config.exclude_items]] = True
            exclusion = Exclusion(excluded)
        boost = None
        if config.novelty_weight or config.long_tail_weight:
            boost = NoveltyBoost.of(
                data, config.novelty_weight, config.long_tail_weight, config.head_fraction
            )
        mmr = None
        feature = config.diversity_feature
        vectors = feature == "vectors" and data.item_vectors is not None
        has = vectors or feature in data.item_multi_hot
        if config.mmr_lambda < 1.0 and not has:
            # A data set of ids alone still gets a list, without the diversity it cannot measure.
            logging.warning("MMR diversity off: %r has no item %s", data.name, feature)
        elif config.mmr_lambda < 1.0:
            mmr = MMR.of(data, feature, config.mmr_lambda)
        caps = None
        if config.max_per_category:
            caps = CategoryCap.of(data, config.category_feature, config.max_per_category)
        return cls(exclusion, boost, mmr, caps)

    def __call__(
        self, candidates: np.ndarray, relevance: np.ndarray, depth: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The reranked order of the candidates.

        Args:
          candidates: [C] int catalogue item indices, distinct; ties go to the earlier one.
          relevance: [C] float the ranking stage's scores (e.g. P(like) in [0, 1]).
          depth: positions chosen greedily (MMR, caps); the candidates after them follow by
            boosted relevance. A list of k <= depth items is the first k of the result.

        Returns:
          (positions [C'] int64 into `candidates`, best first, excluded ones left out;
           scores [C'] float32: the objective each was chosen with: lambda x boosted
           relevance - (1 - lambda) x its largest similarity to the earlier items, or the
           boosted relevance where MMR is off or past `depth`).
        """
        candidates = np.asarray(candidates, np.int64)
        keep = np.ones(candidates.size, bool)
        if self.exclusion is not None:
            keep = self.exclusion.keep(candidates)
        positions = np.flatnonzero(keep)
        items = candidates[positions]
        rel = np.asarray(relevance, np.float32)[positions]
        if self.boost is not None:
            rel = self.boost(items, rel)
        depth = min(depth, items.size)
        chosen, scores = self._greedy(items, rel, depth)
        rest = np.setdiff1d(np.arange(items.size), chosen)
        rest = rest[np.argsort(-rel[rest], kind="stable")]
        order = np.concatenate([chosen, rest]).astype(np.int64)
        return positions[order], np.concatenate([scores, rel[rest]]).astype(np.float32)

    def _greedy(
        self, items: np.ndarray, rel: np.ndarray, depth: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The first `depth` picks: (positions [depth] into items, objective [depth])."""
        if self.mmr is None and self.caps is None:
            order = np.argsort(-rel, kind="stable")[:depth]
            return order, rel[order]
        lam = 1.0 if self.mmr is None else self.mmr.lam
        unit = None if self.mmr is None else self.mmr.unit[items]  # [C, F]
        members = None if self.caps is None else self.caps.members[items]  # [C, G]
        counts = None if self.caps is None else np.zeros(members.shape[1], np.int64)
        max_sim = np.zeros(items.size, np.float32)
        free = np.ones(items.size, bool)
        chosen = np.empty(depth, np.int64)
        scores = np.empty(depth, np.float32)
        for step in range(depth):
            objective = lam * rel - (1.0 - lam) * max_sim
            allowed = free
            if members is not None:
                full = counts >= self.caps.cap  # [G]
                fits = free & ~(members & full[None, :]).any(axis=1)
                allowed = fits if fits.any() else free
            pick = int(np.argmax(np.where(allowed, objective, -np.inf)))  # ties: earlier
            chosen[step], scores[step] = pick, objective[pick]
            free[pick] = False
            if unit is not None:
                np.maximum(max_sim, unit @ unit[pick], out=max_sim)  # [C]
            if members is not None:
                counts += members[pick]
        return chosen, scores
