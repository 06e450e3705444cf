"""A ranking stage trained for ranking: P(watch) and P(like | watch) of recalled candidates.

`TrainedRankerMethod` is recall -> ranking as one evaluation `Method`. Recall is the union of
several recallers' top lists (EASE, DLAE, item-CF, user-CF, popularity; `ranker_data`);
ranking is `TwoHeadRanker`, a small Flax network trained on examples built from a held-out
slice of the training history (`ranker_data.build_examples`), never from validation or test
interactions.

The network embeds the user, the item and the user's latest items (mean-pooled, and
multiplied element-wise with the item: how close the item is to what the user watched
last), concatenates them with the dense features (every recaller's scaled score and rank, user
and item statistics), and runs an MLP with two outputs:
  watch: the logit of P(watch), trained by binary cross-entropy on every candidate;
  like:  the logit of P(like | watch), trained only on the watched candidates.
The final score is learned, not hand-set: P(watch) for a top-K list of what a user will
watch ("watch"), or P(watch) x P(like | watch) = P(watch and like) ("like"); for a given set
of watched items (the study's protocol) the order is P(like | watch).

Choice, and why: two heads instead of one "liked" label, because a candidate that was not
watched says nothing about whether it would be liked; the product of the two is the
probability of the event a recommendation is judged by.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from ml_collections import ConfigDict

from shortrec_jax.data.dataset import Dataset
from shortrec_jax.interface import Method
from shortrec_jax.pipeline.ranker_data import (
    RECALLERS,
    SCORERS,
    Examples,
    RankerInputs,
    build_examples,
)

#: Score of an item the recall stage did not propose: below every candidate's (> 0).
NOT_RECALLED = 0.0
OBJECTIVES = ("watch", "like")
STAGES = ("recall", "recall+rank")
LOSSES = ("pointwise", "listwise")


class TwoHeadRanker(nn.Module):
    """Embeddings + MLP -> (watch logit, like logit).

    Attributes:
      num_users, num_items: U and I (ids are index + 1; 0 = unknown / padding).
      embed_dim: D.
      hidden: MLP widths.
      dropout: dropout rate of the MLP.
    """

    num_users: int
    num_items: int
    embed_dim: int = 16
    hidden: Sequence[int] = (128, 64)
    dropout: float = 0.1

    @nn.compact
    def __call__(self, batch: Mapping[str, jax.Array], train: bool = False) -> jax.Array:
        """batch: user [B], item [B], recent [B, L] int32; dense [B, F] float32 ->
        [B, 2] float32 logits (watch, like)."""
        users = nn.Embed(self.num_users + 1, self.embed_dim, name="user_embed")(batch["user"])
        item_table = nn.Embed(self.num_items + 1, self.embed_dim, name="item_embed")
        items = item_table(batch["item"])  # [B, D]
        recent_mask = (batch["recent"] > 0).astype(jnp.float32)[..., None]  # [B, L, 1]
        recent = (item_table(batch["recent"]) * recent_mask).sum(axis=1)
        recent = recent / jnp.maximum(recent_mask.sum(axis=1), 1.0)  # [B, D]
        x = jnp.concatenate(
            [users, items, recent, items * recent, items * users, batch["dense"]], axis=-1
        )
        for width in self.hidden:
            x = nn.relu(nn.Dense(width)(x))
            x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return nn.Dense(2, name="heads")(x).astype(jnp.float32)


def two_head_loss(
    logits: jax.Array, watched: jax.Array, liked: jax.Array, weight: jax.Array
) -> jax.Array:
    """Weighted mean BCE of the watch head over the examples + weighted mean BCE of the like
    head over the watched ones.

    Args:
      logits: [B, 2] (watch, like) logits.
      watched, liked: [B] float32 labels in {0, 1} (liked implies watched).
      weight: [B] float32, 0 for padding.

    Returns:
      scalar float32.
    """
    watch_bce = optax.sigmoid_binary_cross_entropy(logits[:, 0], watched)
    like_bce = optax.sigmoid_binary_cross_entropy(logits[:, 1], liked)
    seen = watched * weight
    watch_loss = (watch_bce * weight).sum() / jnp.maximum(weight.sum(), 1.0)
    return watch_loss + (like_bce * seen).sum() / jnp.maximum(seen.sum(), 1.0)


def listwise_loss(
    logits: jax.Array, watched: jax.Array, liked: jax.Array, mask: jax.Array
) -> jax.Array:
    """Softmax cross-entropy of the watch head over each user's candidates (every watched
    candidate a target, ListNet-style) + mean BCE of the like head over the watched ones.

    Args:
      logits: [G, C, 2] (watch, like) logits, G users of C candidates each.
      watched, liked: [G, C] float32 labels in {0, 1}.
      mask: [G, C] float32, 0 for padding (and for padded users).

    Returns:
      scalar float32.
    """
    watch = jnp.where(mask > 0, logits[..., 0], -1e9)
    log_p = jax.nn.log_softmax(watch, axis=-1)  # [G, C]
    positives = watched * mask
    per_user = -(log_p * positives).sum(axis=-1)  # summed over the user's watched candidates
    watch_loss = per_user.sum() / jnp.maximum(positives.sum(), 1.0)
    like_bce = optax.sigmoid_binary_cross_entropy(logits[..., 1], liked)
    return watch_loss + (like_bce * positives).sum() / jnp.maximum(positives.sum(), 1.0)


@dataclasses.dataclass(frozen=True)
class RankerConfig:
    """The knobs of recall + trained ranking.

    Attributes:
      recallers: names from `ranker_data.RECALLERS`.
      scorers: names from `ranker_data.SCORERS` (or RECALLERS) whose scores and ranks are
        features only.
      quota: candidates per recaller per user.
      recent_length: the user's latest items given to the model as a field.
      holdout: share of each user's training interactions held out to label the examples.
      negatives: unseen items drawn per user on top of the recalled ones (training only).
      draws: independent held-out slices the examples are built from (more examples).
      like_threshold: a rating at least this is a like.
      objective: "watch" (rank by P(watch)) or "like" (by P(watch and like)).
      loss: "pointwise" (`two_head_loss`) or "listwise" (`listwise_loss`: the watch head
        as a softmax over each user's candidates; its scores are then per-user logits, and
        the order uses their softmax within the user's candidates).
      stages: "recall" (the fused recall order) or "recall+rank".
      embed_dim, hidden, dropout: the network (`TwoHeadRanker`).
      epochs, batch_size, learning_rate, weight_decay: AdamW training.
    """

    recallers: tuple[str, ...] = RECALLERS
    scorers: tuple[str, ...] = SCORERS
    quota: int = 50
    recent_length: int = 20
    holdout: float = 0.2
    negatives: int = 20
    draws: int = 3
    like_threshold: float = 4.0
    objective: str = "watch"
    loss: str = "listwise"
    stages: str = "recall+rank"
    embed_dim: int = 1
    hidden: tuple[int, ...] = (128, 64)
    dropout: float = 0.1
    epochs: int = 4
    batch_size: int = 1024
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4

    def __post_init__(self) -> None:
        unknown = sorted(set(self.recallers) - set(RECALLERS))
        if unknown or not self.recallers:
            raise ValueError(f"recallers {list(self.recallers)}: expected some of {RECALLERS}")
        unknown = sorted(set(self.scorers) - set(RECALLERS) - set(SCORERS))
        if unknown:
            raise ValueError(f"scorers {unknown}: expected some of {RECALLERS + SCORERS}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective={self.objective!r} is not one of {OBJECTIVES}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss={self.loss!r} is not one of {LOSSES}")
        if self.stages not in STAGES:
            raise ValueError(f"stages={self.stages!r} is not one of {STAGES}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs={self.epochs} and batch_size={self.batch_size} must be >= 1")

    def examples(self, train: Dataset, seed: int) -> Examples:
        """The ranker's training examples from `train` alone (`build_examples`)."""
        examples, _ = build_examples(
            train,
            recallers=self.recallers,
            quota=self.quota,
            recent_length=self.recent_length,
            holdout=self.holdout,
            negatives=self.negatives,
            like_threshold=self.like_threshold,
            seed=seed,
            draws=self.draws,
            scorers=self.scorers,
        )
        return examples


def _user_groups(users: np.ndarray) -> np.ndarray:
    """[G, C] example indices grouped by user (-1 = padding), C the largest group."""
    order = np.argsort(users, kind="stable")
    sorted_users = users[order]
    starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
    sizes = np.diff(np.r_[starts, users.size])
    groups = np.full((starts.size, int(sizes.max())), -1, np.int64)
    position = np.arange(users.size) - np.repeat(starts, sizes)
    groups[np.repeat(np.arange(starts.size), sizes), position] = order
    return groups


def train_ranker(
    examples: Examples,
    num_users: int,
    num_items: int,
    config: RankerConfig,
    seed: int,
) -> tuple[TwoHeadRanker, Any, np.ndarray]:
    """Trains `TwoHeadRanker` on the examples (shuffled each epoch from `seed`).

    Pointwise: batches of `batch_size` examples. Listwise: batches of whole users, about
    `batch_size` candidate slots each. Batches have one fixed shape; the last partial batch is
    filled with repeated rows of weight 0, so every example counts once and nothing
    recompiles.

    Returns:
      (the module, its parameters, [epochs] mean training loss per epoch).
    """
    model = TwoHeadRanker(
        num_users, num_items, config.embed_dim, tuple(config.hidden), config.dropout
    )
    inputs = examples.inputs
    listwise = config.loss == "listwise"
    if listwise:
        units = _user_groups(examples.groups)  # [G, C]
        size = max(1, config.batch_size // units.shape[1])
    else:
        units = np.arange(examples.watched.size)[:, None]  # [N, 1]
        size = config.batch_size
    n = units.shape[0]
    rng = jax.random.key(seed)
    rng, init_rng = jax.random.split(rng)
    sample = {k: jnp.asarray(v[:1]) for k, v in inputs.items()}
    # Initialised under jit: one compilation instead of one per operation.
    params = jax.jit(model.init)(init_rng, sample)["params"]
    steps = config.epochs * -(-n // size)
    schedule = optax.cosine_decay_schedule(config.learning_rate, max(1, steps))
    tx = optax.adamw(schedule, weight_decay=config.weight_decay)
    opt_state = jax.jit(tx.init)(params)
    width = units.shape[1]

    @jax.jit
    def step(params, opt_state, batch, watched, liked, weight, key):
        def loss_fn(p):
            logits = model.apply({"params": p}, batch, train=True, rngs={"dropout": key})
            if listwise:
                shape = (size, width)
                return listwise_loss(
                    logits.reshape(*shape, 2),
                    watched.reshape(shape),
                    liked.reshape(shape),
                    weight.reshape(shape),
                )
            return two_head_loss(logits, watched, liked, weight)

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    order_rng = np.random.default_rng(seed)
    losses = np.zeros(config.epochs)
    for epoch in range(config.epochs):
        order = order_rng.permutation(n)
        total, count = 0.0, 0
        for start in range(0, n, size):
            chosen = order[start : start + size]
            real = np.zeros(size, bool)
            real[: chosen.size] = True
            rows = units[np.resize(chosen, size)]  # [size, width], repeats fill the shape
            weight = ((rows >= 0) & real[:, None]).astype(np.float32).ravel()
            rows = np.maximum(rows, 0).ravel()
            batch = {k: jnp.asarray(v[rows]) for k, v in inputs.items()}
            rng, key = jax.random.split(rng)
            params, opt_state, loss = step(
                params,
                opt_state,
                batch,
                jnp.asarray(examples.watched[rows]),
                jnp.asarray(examples.liked[rows]),
                jnp.asarray(weight),
                key,
            )
            total += float(loss)
            count += 1
        losses[epoch] = total / max(1, count)
    return model, params, losses


class TrainedRankerMethod(Method):
    """Recall (several recallers' top lists) -> a ranker trained on held-out training history.

    `fit(train, valid)` builds the examples from `train` only (`build_examples`), trains the
    ranker, then refits the recallers and statistics on the whole of `train` for serving;
    `valid` is not used.

    Args:
      config: the knobs (`RankerConfig`).
      seed: seeds the held-out slice, the sampled items, initialisation and shuffling.
      name: the name the method is reported under.
    """

    outputs_probabilities = False

    def __init__(self, config: RankerConfig, *, seed: int = 0, name: str = "ranker") -> None:
        self.config = config
        self.seed = seed
        self.name = name
        self.examples: Examples | None = None
        self.losses: np.ndarray | None = None

    def fit(self, train: Dataset, valid: Dataset | None = None) -> TrainedRankerMethod:
        c = self.config
        if c.stages == "recall+rank":
            self.examples = c.examples(train, self.seed)
            model, params, losses = train_ranker(
                self.examples, train.num_users, train.num_items, c, self.seed
            )
            self._attach(model, params, losses)
        self.inputs = RankerInputs(train, c.recallers, c.quota, c.recent_length, c.scorers)
        return self

    def _attach(self, model: TwoHeadRanker, params: Any, losses: np.ndarray) -> None:
        self.model, self.params, self.losses = model, params, losses
        self._predict = jax.jit(lambda params, batch: model.apply({"params": params}, batch))

    @classmethod
    def restore(
        cls,
        config: RankerConfig,
        model: TwoHeadRanker,
        params: Any,
        data: Dataset,
        *,
        losses: np.ndarray,
        seed: int = 0,
        name: str = "ranker",
    ) -> TrainedRankerMethod:
        """A fitted method from a trained network (e.g. read back from files): what `fit`
        leaves behind, with the recallers and statistics fitted on `data`."""
        method = cls(config, seed=seed, name=name)
        method._attach(model, params, np.asarray(losses, np.float64))
        method.inputs = RankerInputs(
            data, config.recallers, config.quota, config.recent_length, config.scorers
        )
        return method

    def compilations(self) -> int:
        """How many input shapes the network has been compiled for (one once warm)."""
        return self._predict._cache_size()

    def final_scores(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """The learned final score of given candidates (stages="recall+rank").

        Args:
          users: [B] int user indices.
          items: [B, C] int item indices, -1 for padding.

        Returns:
          [B, C] float32: P(watch) ("watch"; with the listwise loss the softmax over the row's
          valid candidates) or P(watch) x P(like | watch) ("like"); padding's is meaningless.
        """
        users = np.asarray(users, np.int64)
        items = np.asarray(items, np.int64)
        return self._final_of(users, items, self.inputs.recaller_scores(users))

    def _final_of(self, users: np.ndarray, items: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """`final_scores` given the users' [R, B, I] recaller scores."""
        feats = self.inputs.features(users, items, scores)
        return self._final(self._probabilities(feats, items >= 0)).astype(np.float32)

    def _probabilities(
        self, feats: dict[str, np.ndarray], valid: np.ndarray | None = None
    ) -> np.ndarray:
        """[B, C, 2] P(watch), P(like | watch) of [B, C]-shaped inputs, in fixed-size chunks.

        A listwise ranker's watch head is a softmax over the user's candidates: P(watch) is
        the softmax over the `valid` ([B, C] bool) ones (the sigmoid when valid is None:
        the same order within a user)."""
        shape = feats["item"].shape
        flat = {k: v.reshape(-1, *v.shape[2:]) for k, v in feats.items()}
        n = flat["item"].shape[0]
        size = self.config.batch_size * 4
        out = np.zeros((n, 2), np.float32)
        for start in range(0, n, size):
            rows = np.resize(np.arange(start, min(n, start + size)), size)
            batch = {k: jnp.asarray(v[rows]) for k, v in flat.items()}
            logits = np.asarray(self._predict(self.params, batch))
            take = min(size, n - start)
            out[start : start + take] = logits[:take]
        out = out.reshape(*shape, 2)
        probs = 1.0 / (1.0 + np.exp(-out))
        if self.config.loss == "listwise" and valid is not None:
            watch = np.where(valid, out[..., 0], -np.inf)
            watch = np.exp(watch - watch.max(axis=1, keepdims=True))
            probs[..., 0] = watch / watch.sum(axis=1, keepdims=True)
        return probs

    def _final(self, probs: np.ndarray) -> np.ndarray:
        if self.config.objective == "like":
            return probs[..., 0] * probs[..., 1]
        return probs[..., 0]

    def score_all(self, users: np.ndarray) -> np.ndarray:
        """[B, I] float32: candidates 1 + their final score (or their fused recall score in
        stages="recall"), NOT_RECALLED for every other item."""
        users = np.asarray(users, np.int64)
        scores = self.inputs.recaller_scores(users)
        items, fused = self.inputs.candidates(scores)
        valid = items >= 0
        value = fused if self.config.stages == "recall" else self._final_of(users, items, scores)
        out = np.full((users.size, self.inputs.data.num_items), NOT_RECALLED, np.float32)
        rows = np.broadcast_to(np.arange(users.size)[:, None], items.shape)
        out[rows[valid], items[valid]] = 1.0 + value[valid]
        return out

    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """[B, C] scores of given items ([B] users, [B, C] items): P(like | watch) of each, or
        the fused recall score of the recallers' full orders in stages="recall"."""
        users = np.asarray(users, np.int64)
        items = np.asarray(items, np.int64)
        scores = self.inputs.recaller_scores(users)
        if self.config.stages == "recall":
            out = np.zeros(items.shape, np.float64)
            for r in range(self.inputs.num_recallers):
                order = np.argsort(-scores[r], axis=1, kind="stable")
                rank = np.empty_like(order)
                np.put_along_axis(rank, order, np.arange(1, order.shape[1] + 1)[None], axis=1)
                out += 1.0 / (60.0 + np.take_along_axis(rank, items, axis=1))
            return out.astype(np.float32)
        probs = self._probabilities(self.inputs.features(users, items, scores))
        return probs[..., 1]


#: Evaluation names -> their stages.
RANKER_METHODS = {"ranker": "recall+rank", "ranker-recall": "recall"}


def make_ranker_method(name: str, config: Mapping[str, Any], *, seed: int) -> TrainedRankerMethod:
    """An unfitted `TrainedRankerMethod` from an evaluate config's methods.<name> section
    (fields of `RankerConfig`; `stages` defaults to the name's)."""
    fields = dict(config.to_dict() if isinstance(config, ConfigDict) else config)
    if name not in RANKER_METHODS:
        raise ValueError(f"unknown ranker method {name!r}; expected one of {RANKER_METHODS}")
    known = {f.name for f in dataclasses.fields(RankerConfig)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"methods.{name}: unknown fields {unknown}")
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
    fields["stages"] = fields.get("stages") or RANKER_METHODS[name]
    return TrainedRankerMethod(RankerConfig(**fields), seed=seed, name=name)
