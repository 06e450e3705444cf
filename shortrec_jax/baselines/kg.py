"""Knowledge-graph item similarity: path ranking, TransE semantics and behaviour, combined.

Xu et al., "Video recommendation algorithm based on knowledge graph knowledge reasoning",
Computer Engineering and Design 41(3), 2020: items are compared through the knowledge graph
(the paths between them and the embeddings of their entities) as well as through the users
who watched them, and the two similarities are mixed by a weight. The paper leaves the
details open; the choices made here, and why, are in `KnowledgeGraphCF`'s docstring.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import scipy.linalg
import scipy.optimize
import scipy.sparse as sp

from shortrec_jax.baselines.cosine_cf import ItemCF
from shortrec_jax.baselines.item_tokens import item_kg_edges
from shortrec_jax.baselines.similarity import BlockFn, cosine_blocks, csr_rows_padded
from shortrec_jax.data.dataset import Dataset
from shortrec_jax.data.splits import random_split

# Elements of the per-chunk feature blocks used to fit the relation weights.
_FIT_BLOCK_ELEMENTS = 1 << 23
# The smallest alpha validation_weights chooses (see `_fit_on_held_out`).
_MIN_ALPHA = 1e-3


@dataclasses.dataclass(frozen=True)
class TransE:
    """Trained TransE embeddings (Bordes et al., "Translating embeddings for modeling
    multi-relational data", NeurIPS 2013): a true triple (h, r, t) has h + r close to t.

    Attributes:
      entity: [E, D] float32, unit-norm rows.
      relation: [R, D] float32.
      epoch_losses: [epochs] float64, mean margin loss over the triples of each epoch.
    """

    entity: np.ndarray
    relation: np.ndarray
    epoch_losses: np.ndarray

    def distance(self, heads: np.ndarray, relations: np.ndarray, tails: np.ndarray) -> np.ndarray:
        """||e_h + r - e_t||_2 for [N] index arrays: [N] float32 (lower = more plausible)."""
        diff = self.entity[heads] + self.relation[relations] - self.entity[tails]
        return np.linalg.norm(diff, axis=1).astype(np.float32)


# TransE embeddings by (knowledge graph, training settings). They depend on the KG alone, not
# on the ratings, so the fits of one process that share a KG and a seed (the validation
# slice, alpha trials, the training shares of one repeat of Fig. 7) train them once.
_TRANSE_CACHE: collections.OrderedDict[tuple, TransE] = collections.OrderedDict()
_TRANSE_CACHE_SIZE = 4


def train_transe(
    triples: np.ndarray,
    num_entities: int,
    num_relations: int,
    *,
    dim: int = 32,
    epochs: int = 10,
    batch_size: int = 2048,
    margin: float = 1.0,
    learning_rate: float = 0.1,
    seed: int = 0,
) -> TransE:
    """Trains TransE with the margin ranking loss, corrupted triples and Adagrad.

    Follows Bordes et al. (2013), Algorithm 1: uniform(-6/sqrt(D), 6/sqrt(D)) initialisation,
    relations normalised once, entities kept at unit norm (renormalised after every update, so
    the loss cannot be lowered by inflating vectors), loss max(0, margin + d(h, r, t) -
    d(h', r, t')) with the L2 distance, one negative per triple made by replacing the head or
    the tail (each with probability 1/2) by a uniformly drawn entity. Adagrad (Duchi et al.
    2011) instead of plain SGD: rare entities get larger steps, which matters in a KG where
    most actors appear in one film.

    Args:
      triples: [T, 3] int (head, relation, tail) indices.
      num_entities, num_relations: E and R.
      dim: D, the embedding size.
      epochs: passes over the triples.
      batch_size: triples per update.
      margin: the ranking margin gamma.
      learning_rate: Adagrad's step size.
      seed: seeds initialisation, shuffling and corruption.

    Returns:
      The embeddings and the loss of each epoch.
    """
    triples = np.asarray(triples, dtype=np.int64)
    if triples.ndim != 2 or triples.shape[1] != 3:
        raise ValueError(f"triples must be [T, 3], got {triples.shape}")
    if triples.size and (
        triples[:, [0, 2]].max() >= num_entities or triples[:, 1].max() >= num_relations
    ):
        raise ValueError("triples index past num_entities or num_relations")
    rng = np.random.default_rng(seed)
    bound = 6.0 / np.sqrt(dim)
    entity = rng.uniform(-bound, bound, (num_entities, dim))
    entity /= np.linalg.norm(entity, axis=1, keepdims=True)
    relation = rng.uniform(-bound, bound, (num_relations, dim))
    relation /= np.linalg.norm(relation, axis=1, keepdims=True)
    entity_sq = np.zeros_like(entity)  # Adagrad's sums of squared gradients
    relation_sq = np.zeros_like(relation)
    losses = np.zeros(epochs)
    num_triples = triples.shape[0]
    for epoch in range(epochs):
        order = rng.permutation(num_triples)
        total = 0.0
        for start in range(0, num_triples, batch_size):
            h, r, t = triples[order[start : start + batch_size]].T
            n = h.size
            corrupt_head = rng.random(n) < 0.5
            other = rng.integers(num_entities, size=n)
            h_neg = np.where(corrupt_head, other, h)
            t_neg = np.where(corrupt_head, t, other)
            pos = entity[h] + relation[r] - entity[t]  # [n, D]
            neg = entity[h_neg] + relation[r] - entity[t_neg]
            d_pos = np.linalg.norm(pos, axis=1)
            d_neg = np.linalg.norm(neg, axis=1)
            hinge = margin + d_pos - d_neg
            active = hinge > 0
            total += float(hinge[active].sum())
            # d||x|| / dx = x / ||x||; only triples inside the margin have a gradient.
            u_pos = pos[active] / np.maximum(d_pos[active], 1e-12)[:, None]
            u_neg = neg[active] / np.maximum(d_neg[active], 1e-12)[:, None]
            ent_rows = np.concatenate([h[active], t[active], h_neg[active], t_neg[active]])
            ent_grads = np.concatenate([u_pos, -u_pos, -u_neg, u_neg])
            _adagrad(entity, entity_sq, ent_rows, ent_grads, learning_rate)
            _adagrad(relation, relation_sq, r[active], u_pos - u_neg, learning_rate)
            touched = np.unique(ent_rows)
            entity[touched] /= np.linalg.norm(entity[touched], axis=1, keepdims=True)
        losses[epoch] = total / max(1, num_triples)
    return TransE(
        entity=entity.astype(np.float32),
        relation=relation.astype(np.float32),
        epoch_losses=losses,
    )


def _adagrad(
    params: np.ndarray, sq_sums: np.ndarray, rows: np.ndarray, grads: np.ndarray, lr: float
) -> None:
    """One Adagrad step on the rows of `params` that received gradients (rows may repeat)."""
    touched, inverse, counts = np.unique(rows, return_inverse=True, return_counts=True)
    order = np.argsort(inverse, kind="stable")
    summed = np.add.reduceat(grads[order], np.r_[0, np.cumsum(counts)[:-1]], axis=0)  # [m, D]
    sq_sums[touched] += summed * summed
    params[touched] -= lr * summed / (np.sqrt(sq_sums[touched]) + 1e-10)


def path_features(
    dataset: Dataset, relations: Sequence[str] | None = None
) -> tuple[list[str], list[sp.csr_array]]:
    """Per relation r, the normalised item-entity incidence whose Gram matrix ranks paths.

    For relation r, A_r [I, E_r] links each item to the entities one hop away through r. The
    path feature of items i and j is P_r = D_i^-1/2 A_r D_e^-1 A_r^T D_i^-1/2, the symmetric
    form of the path-constrained random walk of the Path Ranking Algorithm (Lao and Cohen,
    2010): the walk item -> entity -> item, where an entity shared by hundreds of films (a
    country, a genre) passes on little and a director shared by two passes on much. It is
    1 for two items that share their one and only entity of that relation. P_r = Z_r Z_r^T with
    Z_r = D_i^-1/2 A_r D_e^-1/2, which is what is returned, so no [I, I] matrix is built here.

    Args:
      dataset: a data set with a knowledge graph.
      relations: relations to use; None uses every relation that links an item.

    Returns:
      (relation names [R'], Z_r [I, E_r] float32 CSR for each), relations with edges only.
    """
    items, rels, entities = item_kg_edges(dataset, relations)
    names, features = [], []
    for name in np.unique(rels).tolist():
        mask = rels == name
        _, codes = np.unique(entities[mask], return_inverse=True)
        incidence = sp.coo_array(
            (np.ones(int(mask.sum()), np.float64), (items[mask], codes)),
            shape=(dataset.num_items, int(codes.max()) + 1),
        ).tocsr()
        item_deg = np.asarray(incidence.sum(axis=1)).ravel()
        entity_deg = np.asarray(incidence.sum(axis=0)).ravel()
        row_scale = np.repeat(1.0 / np.sqrt(np.maximum(item_deg, 1)), np.diff(incidence.indptr))
        incidence.data = (row_scale / np.sqrt(entity_deg[incidence.indices])).astype(np.float32)
        names.append(name)
        features.append(incidence)
    return names, features


def entity_vocabulary(triples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indexes a string KG.

    Args:
      triples: [T, 3] str (head, relation, tail).

    Returns:
      (indexed [T, 3] int64, entities [E] str sorted, relations [R] str sorted).
    """
    entities, ent_codes = np.unique(triples[:, [0, 2]], return_inverse=True)
    relations, rel_codes = np.unique(triples[:, 1], return_inverse=True)
    ent_codes = ent_codes.reshape(-1, 2)
    indexed = np.stack([ent_codes[:, 0], rel_codes.ravel(), ent_codes[:, 1]], axis=1)
    return indexed.astype(np.int64), entities, relations


@dataclasses.dataclass(eq=False, kw_only=True)
class KnowledgeGraphCF(ItemCF):
    """Item-CF whose similarity mixes knowledge-graph semantics with behaviour.

    Xu et al., "Video recommendation algorithm based on knowledge graph knowledge reasoning",
    Computer Engineering and Design 41(3), 2020. For items i and j:

      sim(i, j) = alpha * semantic(i, j) + (1 - alpha) * behaviour(i, j)   both linked to the KG
      sim(i, j) = behaviour(i, j)                                          otherwise

    behaviour is the item-CF cosine (all of ItemCF's options apply: values, shrink, ...), and

      semantic(i, j) = sum_r w_r P_r(i, j) + w_e max(0, cos(e_i, e_j))

    with P_r the path-ranking feature of relation r (`path_features`) and e_i the TransE
    embedding (`train_transe`, fitted here on every triple of the KG) of i's entity. The
    prediction is then item-CF's (`ItemCF`) with this similarity.

    Choices where the paper is vague, and why:
    - Path types are the item -> entity -> item paths of each relation (movie-director-movie,
      movie-actor-movie, ...): the paths that connect two films through one shared fact.
      Longer paths multiply hubs and mostly re-find what behaviour already knows.
    - validation_weights=True chooses alpha and the weights w (one per relation and one for
      the embeddings) on validation data, as the Path Ranking Algorithm learns its path
      weights from held-out facts: a seeded `validation_share` of the training ratings is held
      out, the baseline and the behaviour cosine are computed on the rest (the KG parts need
      no ratings), and alpha and w are those whose similarity best predicts the held-out
      ratings (`_fit_on_held_out`). The method is then fitted on the whole training part
      with them; the test part is never seen.
    - Otherwise (validation_weights=False) w is fitted by non-negative least squares of the
      training behaviour similarity on the semantic features over the pairs of linked items
      (the semantic similarity then estimates behaviour from the KG alone, on its scale), or
      with fit_weights=False fixed: (1 - embedding_weight) spread evenly over the relations,
      embedding_weight on TransE; alpha is given.
    - Weights are non-negative (sharing a director should never make two films less alike),
      and negative embedding cosines are clipped to 0: only positive similarities are
      neighbours.

    Attributes:
      alpha: weight of the semantic similarity (0.3; 0 is plain item-CF); ignored when
        validation_weights or alpha_grid choose it.
      relations: KG relations used for paths; None uses every relation that links an item.
      validation_weights: choose alpha and w on a held-out slice of the training part; the
        choice is `validation_fit` (alpha, weights, held-out squared errors).
      fit_weights: without validation_weights, fit w to behaviour (True) or use fixed ones.
      embedding_weight: TransE's share of the semantic similarity when fit_weights=False.
      dim, epochs, batch_size, margin, learning_rate: TransE's training (`train_transe`).
      seed: seeds TransE and the validation slice.
      alpha_grid: when given, alpha is chosen from these values on validation data: the
        method (with w as validation_weights or fit_weights set it) is fitted on the slice's
        rest with each alpha, and the alpha whose predictions give the highest precision@5
        on the held-out ratings (the study's metric: each user's held-out movies ranked, a
        hit is a rating >= 4) is kept and refitted on all of the training part. The choice
        and the scores are `chosen_alpha` and `validation_scores`. A single value fixes
        alpha (alpha_grid=(1.0,) with validation_weights: the fitted KG similarity alone).
      validation_share: the share of training ratings held out to choose alpha and w.
      Every ItemCF attribute (k, shrink, values, aggregate, ...) also applies;
      validation_weights needs a rating prediction (aggregate "mean" or "weighted").
    """

    name: ClassVar[str] = "kg"
    alpha: float = 0.3
    relations: Sequence[str] | None = None
    validation_weights: bool = False
    fit_weights: bool = True
    embedding_weight: float = 0.5
    dim: int = 32
    epochs: int = 10
    batch_size: int = 2048
    margin: float = 1.0
    learning_rate: float = 0.1
    seed: int = 0
    alpha_grid: Sequence[float] | None = None
    validation_share: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.alpha_grid is not None and (
            not self.alpha_grid or any(not 0.0 <= a <= 1.0 for a in self.alpha_grid)
        ):
            raise ValueError(f"alpha_grid={self.alpha_grid} must be values in [0, 1]")
        if not 0.0 < self.validation_share < 1.0:
            raise ValueError(f"validation_share={self.validation_share} must be in (0, 1)")
        if not 0.0 <= self.alpha <= 1.0 or not 0.0 <= self.embedding_weight <= 1.0:
            raise ValueError(
                f"alpha={self.alpha} and embedding_weight={self.embedding_weight} must be in [0, 1]"
            )
        if self.validation_weights and self.aggregate == "sum":
            raise ValueError(
                "validation_weights=True fits held-out ratings and needs aggregate 'mean' or "
                "'weighted', got aggregate='sum'"
            )
        # Semantic weights chosen before the similarity is built (validation_weights).
        self._chosen_weights: np.ndarray | None = None

    def fit(self, train: Dataset, valid: Dataset | None = None) -> KnowledgeGraphCF:
        """Fits on `train`, choosing alpha and the weights on a slice of it first when
        validation_weights or alpha_grid is set; `valid` is not used."""
        if self.validation_weights or self.alpha_grid is not None:
            inner = random_split(
                train, (1.0 - self.validation_share, self.validation_share), seed=self.seed
            )
        if self.validation_weights:
            self.validation_fit = self._fit_on_held_out(inner.train, inner.test)
            self.alpha = self.validation_fit["alpha"]
            self._chosen_weights = np.array(list(self.validation_fit["weights"].values()))
        if self.alpha_grid is not None:
            scores = {}
            if len(self.alpha_grid) > 1:
                for alpha in self.alpha_grid:
                    trial = dataclasses.replace(
                        self, alpha=float(alpha), alpha_grid=None, validation_weights=False
                    )
                    trial._chosen_weights = self._chosen_weights
                    scores[float(alpha)] = _held_out_precision(trial.fit(inner.train), inner.test)
            else:
                scores[float(self.alpha_grid[0])] = float("nan")
            self.validation_scores = scores
            # Ties go to less KG; NaN (a single value, not scored) is taken as it is.
            self.chosen_alpha = max(scores, key=lambda a: (np.nan_to_num(scores[a]), -a))
            self.alpha = self.chosen_alpha
        return super().fit(train, valid)

    @property
    def transe(self) -> TransE:
        """The fitted TransE embeddings (entities indexed as in `entities`)."""
        return self._transe

    @property
    def entities(self) -> np.ndarray:
        """[E] str, the KG entity of each row of `transe.entity`."""
        return self._entities

    @property
    def feature_weights(self) -> dict[str, float]:
        """The semantic weights: relation name -> w_r, and "transe" -> w_e."""
        return dict(self._feature_weights)

    def _kg_parts(
        self, train: Dataset
    ) -> tuple[list[str], list[sp.csr_array], np.ndarray, np.ndarray]:
        """The rating-free parts: (relation names, their Z_r [I, E_r], item vectors [I, D]
        (0 for unlinked items), linked [I] bool); stores the entities and TransE."""
        if train.kg_triples is None or train.item_entities is None:
            raise ValueError(f"data set {train.name!r} has no knowledge graph for method 'kg'")
        names, paths = path_features(train, self.relations)
        indexed, self._entities, _ = entity_vocabulary(train.kg_triples)
        self._transe = _cached_transe(
            indexed,
            self._entities.size,
            int(indexed[:, 1].max()) + 1,
            dim=self.dim,
            epochs=self.epochs,
            batch_size=self.batch_size,
            margin=self.margin,
            learning_rate=self.learning_rate,
            seed=self.seed,
        )
        # An item is linked when its entity occurs in some triple; others have no KG facts.
        rows = np.searchsorted(self._entities, train.item_entities).clip(
            max=self._entities.size - 1
        )
        linked = (train.item_entities != "") & (self._entities[rows] == train.item_entities)
        item_vectors = np.zeros((train.num_items, self.dim), dtype=np.float32)  # [I, D]
        item_vectors[linked] = self._transe.entity[rows[linked]]
        return names, paths, item_vectors, linked

    def _similarity_blocks(self, train: Dataset, values: sp.csr_array) -> BlockFn:
        behaviour = cosine_blocks(values.T.tocsr(), self.shrink)
        names, paths, item_vectors, linked = self._kg_parts(train)
        if self._chosen_weights is not None:
            weights = self._chosen_weights
        elif self.fit_weights:
            rated = np.diff(values.T.tocsr().indptr) > 0
            weights = _fit_semantic_weights(paths, item_vectors, behaviour, linked & rated)
        else:
            share = (1.0 - self.embedding_weight) / max(1, len(paths))
            weights = np.array([share] * len(paths) + [self.embedding_weight])
        self._feature_weights = dict(zip([*names, "transe"], weights.tolist(), strict=True))
        # sum_r w_r Z_r Z_r^T is one product of the stacked, sqrt(w)-scaled Z_r.
        stacked = sp.hstack(
            [np.sqrt(w) * z for w, z in zip(weights[:-1], paths, strict=True)]
            or [sp.csr_array((train.num_items, 1), dtype=np.float32)],
            format="csr",
        )
        stacked_t = stacked.T.tocsr()
        embedding_weight = float(weights[-1])
        alpha = self.alpha

        def block(r0: int, r1: int) -> np.ndarray:
            beh = behaviour(r0, r1)  # [c, I]
            semantic = (stacked[r0:r1] @ stacked_t).toarray()
            semantic += embedding_weight * np.maximum(item_vectors[r0:r1] @ item_vectors.T, 0.0)
            both = linked[r0:r1, None] & linked[None, :]
            return np.where(both, alpha * semantic + (1.0 - alpha) * beh, beh)

        return block

    def _fit_on_held_out(self, rest: Dataset, held: Dataset) -> dict:
        """Alpha and the semantic weights that best predict the held-out ratings.

        On `rest` (the training part less the slice): the baseline b, the residuals r - b
        ("weighted": the ratings) and the behaviour cosine, clipped at 0 as the table keeps
        positive similarities only. For each held-out (u, i), the all-neighbour prediction

          b_ui + sum_j s(i, j) c_uj / sum_j s(i, j)     (j over the items u rated in `rest`)

        with s(i, j) = (1 - alpha) beh(i, j) + alpha semantic(i, j) when both are linked and
        beh(i, j) otherwise, is a ratio of sums that are linear in v = (1 - alpha, alpha w):
        each feature's sums are computed once (`_held_out_sums`), and v >= 0 with
        alpha >= _MIN_ALPHA minimises the mean squared error by L-BFGS-B from plain item-CF
        (w = 0); a single-value alpha_grid fixes alpha. The k-nearest cut of the method is
        left out of this fit (its neighbours depend on the weights being fitted);
        alpha_grid can then choose alpha with it.

        Returns:
          {"alpha", "weights" (name -> w, as `feature_weights`), "mse_item_cf" (of plain
          item-CF), "mse" (at the optimum), "pairs" (held-out ratings used)}.
        """
        probe = dataclasses.replace(self, validation_weights=False, alpha_grid=None)
        values = probe._fit_common(rest, centre_by_user=True)
        names, paths, item_vectors, linked = self._kg_parts(rest)
        behaviour = cosine_blocks(values.T.tocsr(), self.shrink)
        users, items = held.users.astype(np.int64), held.items.astype(np.int64)
        target = held.ratings.astype(np.float64)
        if self.aggregate == "mean":
            target -= probe._baseline.predict(users, items[:, None])[:, 0]
        sums, masses = _held_out_sums(
            behaviour, paths, item_vectors, linked, probe._contrib, users, items
        )
        # Columns: behaviour on unlinked pairs (weight 1), on linked pairs (1 - alpha), then
        # the semantic features (alpha w).
        fixed_sums, fixed_masses = sums[:, 0], masses[:, 0]
        sums, masses = sums[:, 1:], masses[:, 1:]

        def loss(v: np.ndarray) -> tuple[float, np.ndarray]:
            num = fixed_sums + sums @ v
            den = fixed_masses + masses @ v
            safe = np.where(den > 0, den, 1.0)
            pred = np.where(den > 0, num / safe, 0.0)
            err = pred - target
            # d pred / d v_f = (sums_f - pred masses_f) / den.
            grad = ((sums - pred[:, None] * masses) / safe[:, None] * (den > 0)[:, None]).T @ err
            return float(np.mean(err * err)), 2.0 * grad / max(1, err.size)

        item_cf = np.zeros(sums.shape[1])
        item_cf[0] = 1.0
        # v_0 = 1 with w > 0 (the KG on top of all of behaviour) is where the method's form
        # only tends to, as alpha -> 0 with w / alpha: alpha stays >= _MIN_ALPHA instead, so
        # every fitted similarity is one the method can build (w = 0 is still item-CF).
        bounds = [(0.0, 1.0 - _MIN_ALPHA)] + [(0.0, None)] * (sums.shape[1] - 1)
        start = np.r_[1.0 - _MIN_ALPHA, np.zeros(sums.shape[1] - 1)]
        if self.alpha_grid is not None and len(self.alpha_grid) == 1:
            # One alpha is what the method will use: w is fitted for it, from equal weights
            # (at alpha = 1 the start of plain item-CF would leave linked pairs no similarity).
            fixed = 1.0 - float(self.alpha_grid[0])
            bounds[0] = (fixed, fixed)
            start = np.r_[fixed, np.ones(sums.shape[1] - 1)]
            if fixed == 1.0:  # alpha = 0: plain item-CF, no weight to fit
                bounds[1:] = [(0.0, 0.0)] * (sums.shape[1] - 1)
                start = item_cf
        found = scipy.optimize.minimize(loss, start, jac=True, method="L-BFGS-B", bounds=bounds)
        v = found.x
        alpha = float(1.0 - v[0])
        weights = v[1:] / alpha if alpha > 0 else v[1:]
        return {
            "alpha": alpha,
            "weights": dict(zip([*names, "transe"], weights.tolist(), strict=True)),
            "mse_item_cf": loss(item_cf)[0],
            "mse": float(found.fun),
            "pairs": int(users.size),
        }


def _cached_transe(triples: np.ndarray, num_entities: int, num_relations: int, **kw) -> TransE:
    """`train_transe(triples, num_entities, num_relations, **kw)`, trained once per process
    for equal arguments (`_TRANSE_CACHE`)."""
    digest = hashlib.sha256(np.ascontiguousarray(triples).tobytes()).hexdigest()
    key = (digest, triples.shape, num_entities, num_relations, tuple(sorted(kw.items())))
    if key not in _TRANSE_CACHE:
        _TRANSE_CACHE[key] = train_transe(triples, num_entities, num_relations, **kw)
        while len(_TRANSE_CACHE) > _TRANSE_CACHE_SIZE:
            _TRANSE_CACHE.popitem(last=False)
    _TRANSE_CACHE.move_to_end(key)
    return _TRANSE_CACHE[key]


def _held_out_sums(
    behaviour: BlockFn,
    paths: list[sp.csr_array],
    item_vectors: np.ndarray,
    linked: np.ndarray,
    contrib: sp.csr_array,
    users: np.ndarray,
    items: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Per held-out pair and similarity feature, the neighbour sums of `_fit_on_held_out`.

    Features f: 0 the clipped behaviour cosine on pairs with an unlinked item, 1 the same on
    linked pairs, then P_r for each relation, then the clipped TransE cosine (0 on pairs with
    an unlinked item, as the method uses them).

    Args:
      behaviour: the behaviour cosine's block function ([c, I] rows).
      paths: the Z_r [I, E_r] of `path_features`.
      item_vectors: [I, D] unit entity embeddings (0 for unlinked items).
      linked: [I] bool.
      contrib: [U, I] CSR, what a neighbour contributes (residuals or ratings).
      users, items: [N] int, the held-out pairs.

    Returns:
      (sums [N, F], masses [N, F]) float64: sum_j s_f(i, j) c_uj and sum_j s_f(i, j) over
      the items j that u has in `contrib`.
    """
    num_items = item_vectors.shape[0]
    num_features = len(paths) + 3
    sums = np.zeros((users.size, num_features))
    masses = np.zeros((users.size, num_features))
    order = np.argsort(items, kind="stable")
    bounds = np.searchsorted(items[order], np.arange(num_items + 1))
    chunk = max(1, _FIT_BLOCK_ELEMENTS // (num_items * num_features))
    for r0 in range(0, num_items, chunk):
        r1 = min(num_items, r0 + chunk)
        pairs = order[bounds[r0] : bounds[r1]]
        if pairs.size == 0:
            continue
        feats = np.empty((num_features, r1 - r0, num_items), dtype=np.float32)  # [F, c, I]
        beh = np.maximum(behaviour(r0, r1), 0.0)
        both = linked[r0:r1, None] & linked[None, :]
        feats[0] = np.where(both, 0.0, beh)
        feats[1] = np.where(both, beh, 0.0)
        for f, z in enumerate(paths, start=2):
            feats[f] = (z[r0:r1] @ z.T).toarray()
        feats[-1] = np.maximum(item_vectors[r0:r1] @ item_vectors.T, 0.0)
        # Pairs in parts whose gathered [F, n, L] stays about the size of `feats`.
        lengths = np.diff(contrib.indptr)[users[pairs]]
        part = max(1, _FIT_BLOCK_ELEMENTS // (num_features * max(1, int(lengths.max()))))
        for p0 in range(0, pairs.size, part):
            some = pairs[p0 : p0 + part]
            history, values = csr_rows_padded(contrib, users[some])  # [n, L]
            present = history >= 0
            rows = (items[some] - r0)[:, None]
            s = feats[:, rows, np.where(present, history, 0)] * present  # [F, n, L]
            sums[some] = np.einsum("fnl,nl->nf", s, values)
            masses[some] = s.sum(axis=2).T
    return sums, masses


def _held_out_precision(method: ItemCF, held: Dataset, n: int = 5, like: float = 4.0) -> float:
    """Mean over users of the share of ratings >= `like` among the top min(n, count) of the
    user's held-out items ranked by `method` (ties by item index)."""
    order = np.lexsort((held.items, held.users))
    users, items = held.users[order], held.items[order]
    liked = held.ratings[order] >= like
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    counts = np.diff(np.r_[starts, users.size])
    width = int(counts.max()) if counts.size else 0
    slots = np.arange(width)[None, :] < counts[:, None]  # [B, C]
    index = np.where(slots, starts[:, None] + np.arange(width)[None, :], starts[:, None])
    scores = np.empty(index.shape, np.float32)
    for r0 in range(0, starts.size, 256):
        rows = slice(r0, r0 + 256)
        scores[rows] = method.score(users[starts[rows]], items[index[rows]])
    scores = np.where(slots, scores, -np.inf)
    top = np.argsort(-scores, axis=1, kind="stable")[:, :n]  # by item index within ties
    taken = np.take_along_axis(slots, top, axis=1)
    hits = np.take_along_axis(liked[index], top, axis=1) & taken
    shares = hits.sum(axis=1) / taken.sum(axis=1)
    return float(shares.mean()) if shares.size else 0.0


def _fit_semantic_weights(
    paths: list[sp.csr_array],
    item_vectors: np.ndarray,
    behaviour: BlockFn,
    usable: np.ndarray,
) -> np.ndarray:
    """Non-negative least squares of behaviour similarity on the semantic features.

    Over the ordered pairs (i, j), i != j, of usable items, minimises
    sum (sum_f w_f x_f(i, j) - behaviour(i, j))^2 subject to w >= 0, with the features x_f the
    path features P_r and the clipped embedding cosine. Accumulates the normal equations
    G = X^T X and c = X^T y chunk by chunk, then solves min ||L^T w - L^-1 c|| (G = L L^T)
    with SciPy's NNLS, which is the same problem with F + 1 rows instead of I^2.

    Args:
      paths: the Z_r [I, E_r] of `path_features`.
      item_vectors: [I, D] unit entity embeddings (0 for unlinked items).
      behaviour: the behaviour similarity's block function.
      usable: [I] bool, items linked to the KG with training ratings.

    Returns:
      [F + 1] float64 weights (relations, then the embedding); all 0 if nothing is usable.
    """
    num_items = item_vectors.shape[0]
    num_features = len(paths) + 1
    gram = np.zeros((num_features, num_features))
    target = np.zeros(num_features)
    cols = np.flatnonzero(usable)
    if cols.size < 2:
        return np.zeros(num_features)
    paths_cols = [z[cols].T.tocsr() for z in paths]  # [E_r, n]
    vectors_cols = item_vectors[cols].T  # [D, n]
    chunk = max(1, _FIT_BLOCK_ELEMENTS // (cols.size * num_features))
    for r0 in range(0, num_items, chunk):
        r1 = min(num_items, r0 + chunk)
        local = np.flatnonzero(usable[r0:r1])
        rows = r0 + local
        if rows.size == 0:
            continue
        feats = np.empty((num_features, rows.size, cols.size), dtype=np.float32)  # [F, c, n]
        for f, (z, z_cols) in enumerate(zip(paths, paths_cols, strict=True)):
            feats[f] = (z[rows] @ z_cols).toarray()
        feats[-1] = np.maximum(item_vectors[rows] @ vectors_cols, 0.0)
        off_diagonal = rows[:, None] != cols[None, :]  # [c, n]
        feats *= off_diagonal
        flat = feats.reshape(num_features, -1)  # [F, c * n]
        beh = np.where(off_diagonal, behaviour(r0, r1)[local][:, cols], 0.0).astype(np.float32)
        gram += flat @ flat.T
        target += flat @ beh.ravel()
    ridge = 1e-9 * max(np.trace(gram), 1e-12)  # keeps the factorisation defined
    lower = scipy.linalg.cholesky(gram + ridge * np.eye(num_features), lower=True)
    rhs = scipy.linalg.solve_triangular(lower, target, lower=True)
    weights, _ = scipy.optimize.nnls(lower.T, rhs)
    return weights
