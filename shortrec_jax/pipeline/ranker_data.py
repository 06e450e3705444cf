"""What a trained ranker sees: recalled candidates, their features, and labels from a held-out
slice of the training history.

The ranking stage is trained on the examples it will score in serving. `build_examples`
holds out a random share of each user's *training* interactions (the validation and test
parts are never passed in), fits the recallers and the statistics on the rest, recalls
candidates for every user exactly as serving does, adds a few sampled unseen items, and
labels each pair by what the user did in the held-out slice: watched (the pair is there),
and watched and liked (its rating is at least the like threshold). In serving the same
recallers and statistics are fitted on the whole training part (`RankerInputs.fit`) and the
same features are computed for the candidates of a request.

Features of a (user, item) pair (`RankerInputs.features`):
  per recaller: its score min-max scaled over the user's unseen items (so the scale does not
    depend on how much history the recaller was fitted on) and log(1 + rank) of the item in
    that recaller's order of the user's unseen items;
  user: activity percentile, mean rating minus the global mean, log(1 + days since the user's
    last interaction);
  item: popularity percentile, damped mean rating minus the global mean, log(1 + days since
    its last and since its first interaction);
  timing: log(1 + the item's interactions while the user was active, between the user's
    first and last interaction) and their share of the item's interactions (what was being
    watched when the user was watching);
  ids: the user, the item, and the user's `recent` latest items (by time) as a field.
Days are counted back from the newest interaction of the data the inputs were fitted on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from shortrec_jax.baselines import DLAE, EASE, ItemCF, Popularity, UserCF
from shortrec_jax.data.dataset import Dataset
from shortrec_jax.data.splits import per_user_random_split
from shortrec_jax.interface import Method, seen_matrix_rows

SECONDS_PER_DAY = 86_400.0
#: Item stride of `Statistics.item_times` keys (timestamps must be below it: 2^40 s).
TIME_STRIDE = 1 << 40
#: Pseudo-ratings at the global mean that damp an item's mean rating.
ITEM_MEAN_DAMPING = 10.0


def make_recaller(name: str) -> Method:
    """A recaller by name, set for full-catalogue top-K (binary histories, summed neighbours).

    ease: EASE (Steck 2019), l2 = 500; dlae: DLAE (Steck 2020), dropout 0.5, l2 = 300;
    item-cf / user-cf: cosine kNN on binary histories, 100 neighbours per item (user),
    similarities summed; pop: interactions per item; item-cf-rating: the predicted rating of
    item-CF as the study's protocol runs it; ease-liked: EASE on the items rated >= 4 only.
    """
    if name == "ease":
        return EASE(l2=500.0)
    if name == "dlae":
        return DLAE(l2=300.0, dropout=0.5)
    if name == "ease-liked":
        return EASE(l2=500.0, like_threshold=4.0)
    if name == "item-cf":
        return ItemCF(values="binary", aggregate="sum", k=None, max_neighbours=100)
    if name == "user-cf":
        return UserCF(values="binary", aggregate="sum", k=None, max_neighbours=100)
    if name == "pop":
        return Popularity()
    if name == "item-cf-rating":
        return ItemCF(k=30, values="centered", aggregate="mean")
    raise ValueError(f"unknown recaller {name!r}; expected one of {RECALLERS + SCORERS}")


RECALLERS = ("ease", "item-cf", "user-cf", "pop", "dlae")
#: Scorers that only give features: the study protocol's item-CF, a rating predictor (adjusted
#: cosine on a damped baseline), which ranks rare items too high to recall with; EASE on liked
#: items, which recalls worse than EASE (benchmarks/recall_ceiling.py) but says what is liked.
SCORERS = ("item-cf-rating", "ease-liked")


def _percentile(values: np.ndarray) -> np.ndarray:
    """[N] -> [N] float32 in [0, 1]: the share of entries strictly below each value."""
    ordered = np.sort(values)
    return (np.searchsorted(ordered, values, side="left") / max(1, values.size)).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class Statistics:
    """User and item statistics of one set of interactions (dense, [U, 3] and [I, 4]).

    Attributes:
      user: [U, 3] float32 activity percentile, mean rating - mu, log(1 + days since last).
      item: [I, 4] float32 popularity percentile, damped mean rating - mu, log(1 + days since
        last), log(1 + days since first).
      recent: [U, R] int32 the user's R latest items by time, newest first, item index + 1
        (0 = padding).
      window: [U, 2] int64 the time of each user's first and last interaction.
      item_times: [N] int64 item * 2^40 + timestamp of every interaction, sorted: the
        interactions of item i between two times are one `searchsorted` away.
    """

    user: np.ndarray
    item: np.ndarray
    recent: np.ndarray
    window: np.ndarray
    item_times: np.ndarray

    def in_window(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """[B, C] int64 interactions of each item inside its user's active window ([B] users,
        [B, C] items): the item's popularity while the user was active."""
        first = self.window[users, 0][:, None] + items * TIME_STRIDE
        last = self.window[users, 1][:, None] + items * TIME_STRIDE
        return np.searchsorted(self.item_times, last, side="right") - np.searchsorted(
            self.item_times, first, side="left"
        )

    @classmethod
    def fit(cls, data: Dataset, recent_length: int) -> Statistics:
        num_users, num_items = data.num_users, data.num_items
        ratings = data.ratings.astype(np.float64)
        mu = float(ratings.mean()) if ratings.size else 0.0
        now = float(data.timestamps.max()) if data.num_interactions else 0.0
        user_count = np.bincount(data.users, minlength=num_users).astype(np.float64)
        user_sum = np.bincount(data.users, ratings, minlength=num_users)
        user_mean = np.divide(
            user_sum, user_count, out=np.full(num_users, mu), where=user_count > 0
        )
        user_last = np.full(num_users, -np.inf)
        np.maximum.at(user_last, data.users, data.timestamps.astype(np.float64))
        item_count = np.bincount(data.items, minlength=num_items).astype(np.float64)
        item_sum = np.bincount(data.items, ratings, minlength=num_items)
        item_mean = (item_sum + ITEM_MEAN_DAMPING * mu) / (item_count + ITEM_MEAN_DAMPING)
        item_last = np.full(num_items, -np.inf)
        np.maximum.at(item_last, data.items, data.timestamps.astype(np.float64))
        item_first = np.full(num_items, np.inf)
        np.minimum.at(item_first, data.items, data.timestamps.astype(np.float64))

        def days_since(t: np.ndarray) -> np.ndarray:
            # Never seen: as old as the oldest interaction of the data.
            oldest = float(data.timestamps.min()) if data.num_interactions else 0.0
            t = np.where(np.isfinite(t), t, oldest)
            return np.log1p(np.maximum(now - t, 0.0) / SECONDS_PER_DAY)

        user = np.stack(
            [_percentile(user_count), user_mean - mu, days_since(user_last)], axis=1
        ).astype(np.float32)
        item = np.stack(
            [
                _percentile(item_count),
                item_mean - mu,
                days_since(item_last),
                days_since(item_first),
            ],
            axis=1,
        ).astype(np.float32)
        recent = np.zeros((num_users, recent_length), np.int32)
        order = np.lexsort((-data.timestamps, data.users))  # by user, newest first
        users_sorted = data.users[order]
        starts = np.searchsorted(users_sorted, np.arange(num_users))
        position = np.arange(order.size) - starts[users_sorted]
        keep = position < recent_length
        recent[users_sorted[keep], position[keep]] = data.items[order][keep] + 1
        window = np.zeros((num_users, 2), np.int64)
        if data.num_interactions:
            window[:, 0] = np.iinfo(np.int64).max // 4
            np.minimum.at(window[:, 0], data.users, data.timestamps)
            np.maximum.at(window[:, 1], data.users, data.timestamps)
            window[:, 0] = np.minimum(window[:, 0], window[:, 1])
        item_times = np.sort(data.items.astype(np.int64) * TIME_STRIDE + data.timestamps)
        return cls(user=user, item=item, recent=recent, window=window, item_times=item_times)


class RankerInputs:
    """Recallers and statistics fitted on one set of interactions; candidates and features.

    Args:
      data: the interactions the recallers, the statistics and the exclusions come from.
      recallers: names from RECALLERS.
      quota: candidates each recaller proposes per user (its best unseen items).
      recent_length: R, the user's latest items kept as a field.
      scorers: names from SCORERS or RECALLERS whose scores are features only.
    """

    def __init__(
        self,
        data: Dataset,
        recallers: Sequence[str],
        quota: int,
        recent_length: int,
        scorers: Sequence[str] = (),
    ) -> None:
        if quota < 1:
            raise ValueError(f"quota={quota} must be >= 1")
        self.data = data
        self.num_recallers = len(recallers)
        self.names = (*recallers, *scorers)
        self.quota = quota
        self.methods = [make_recaller(name).fit(data) for name in self.names]
        self.stats = Statistics.fit(data, recent_length)
        self.item_counts = np.bincount(data.items, minlength=data.num_items)

    @property
    def num_dense(self) -> int:
        """F, the width of the dense features."""
        return 2 * len(self.names) + self.stats.user.shape[1] + self.stats.item.shape[1] + 2

    def recaller_scores(self, users: np.ndarray) -> np.ndarray:
        """[R, B, I] float32 every recaller's and scorer's scores, -inf on the users' seen
        items (recallers first)."""
        rows, items = seen_matrix_rows(self.data, users)
        out = np.stack([np.asarray(m.score_all(users), np.float32) for m in self.methods])
        out[:, rows, items] = -np.inf
        return out

    def candidates(self, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The union of each recaller's `quota` best unseen items.

        Args:
          scores: [R, B, I] from `recaller_scores`.

        Returns:
          (items [B, C] int64, padded with -1; fused [B, C] float32 reciprocal-rank-fusion
          score sum_r 1 / (60 + rank_r), 0 on padding), candidates by fused score.
        """
        _, batch, num_items = scores.shape
        num_recallers = self.num_recallers
        quota = min(self.quota, num_items)
        fused = np.zeros((batch, num_items), np.float64)
        for r in range(num_recallers):
            part = np.argpartition(-scores[r], quota - 1, axis=1)[:, :quota]
            vals = np.take_along_axis(scores[r], part, axis=1)
            order = np.argsort(-vals, axis=1, kind="stable")
            part = np.take_along_axis(part, order, axis=1)
            finite = np.isfinite(np.take_along_axis(scores[r], part, axis=1))
            rank = np.broadcast_to(np.arange(1, quota + 1), part.shape)
            np.add.at(fused, (np.nonzero(finite)[0], part[finite]), 1.0 / (60.0 + rank[finite]))
        width = max(1, int((fused > 0).sum(axis=1).max()))
        items = np.argsort(-fused, axis=1, kind="stable")[:, :width]
        best = np.take_along_axis(fused, items, axis=1)
        items = np.where(best > 0, items, -1)
        return items.astype(np.int64), best.astype(np.float32)

    def features(
        self, users: np.ndarray, items: np.ndarray, scores: np.ndarray
    ) -> dict[str, np.ndarray]:
        """The model's inputs for [B] users and their [B, C] items (-1 = padding).

        Args:
          users: [B] int user indices.
          items: [B, C] int item indices, -1 for padding (features of item 0, masked later).
          scores: [R, B, I] from `recaller_scores` for these users.

        Returns:
          user [B, C] int32 (index + 1), item [B, C] int32 (index + 1, 0 on padding),
          recent [B, C, L] int32, dense [B, C, F] float32.
        """
        safe = np.maximum(items, 0)
        dense = []
        for r in range(scores.shape[0]):
            best = np.max(scores[r], axis=1, keepdims=True)  # [B, 1]
            worst = np.min(np.where(np.isfinite(scores[r]), scores[r], np.inf), axis=1)
            span = np.maximum(best[:, 0] - worst, 1e-12)[:, None]
            own = np.take_along_axis(scores[r], safe, axis=1)
            own = np.where(np.isfinite(own), own, worst[:, None])
            dense.append((own - worst[:, None]) / span)
            # Rank among the user's unseen items, from 1 (ties by item index).
            order = np.argsort(-scores[r], axis=1, kind="stable")
            rank = np.empty_like(order)
            np.put_along_axis(rank, order, np.arange(1, order.shape[1] + 1)[None, :], axis=1)
            dense.append(np.log1p(np.take_along_axis(rank, safe, axis=1).astype(np.float64)))
        stacked = np.stack(dense, axis=-1).astype(np.float32)  # [B, C, 2R]
        user_stats = np.broadcast_to(self.stats.user[users][:, None, :], (*items.shape, 3))
        item_stats = self.stats.item[safe]  # [B, C, 4]
        # The item's interactions while the user was active, and their share of all of its.
        during = self.stats.in_window(users, safe).astype(np.float32)
        total = np.maximum(self.item_counts[safe], 1)
        timing = np.stack([np.log1p(during), during / total], axis=-1).astype(np.float32)
        recent = self.stats.recent[users]  # [B, L]
        batch, width = items.shape
        return {
            "user": np.broadcast_to((users + 1)[:, None], items.shape).astype(np.int32),
            "item": np.where(items >= 0, items + 1, 0).astype(np.int32),
            "recent": np.broadcast_to(recent[:, None, :], (batch, width, recent.shape[1])),
            "dense": np.concatenate([stacked, user_stats, item_stats, timing], axis=-1),
        }


@dataclasses.dataclass(frozen=True)
class Examples:
    """Flat training examples of the ranker.

    Attributes:
      users, items: [N] int64 the pairs.
      groups: [N] int64 one id per (held-out draw, user): the lists a listwise loss ranks.
      inputs: the model inputs (`RankerInputs.features`), flattened to [N, ...].
      watched: [N] float32, 1 when the pair is in the held-out slice.
      liked: [N] float32, 1 when watched and rated >= the like threshold.
    """

    users: np.ndarray
    items: np.ndarray
    groups: np.ndarray
    inputs: dict[str, np.ndarray]
    watched: np.ndarray
    liked: np.ndarray


def build_examples(
    train: Dataset,
    *,
    recallers: Sequence[str],
    quota: int,
    recent_length: int,
    holdout: float,
    negatives: int,
    like_threshold: float,
    seed: int,
    draws: int = 1,
    scorers: Sequence[str] = (),
    batch_users: int = 256,
) -> tuple[Examples, RankerInputs]:
    """The ranker's training examples, from the training part alone.

    Each user's training interactions are split at random into a base ((1 - holdout) of them)
    and a held-out slice; recallers and statistics are fitted on the base; each user's
    candidates are the recall stage's plus `negatives` items drawn uniformly among those
    outside the base history; labels come from the held-out slice. With draws > 1 this is
    repeated with seeds seed, seed + 1, ... (independent held-out slices), and the examples
    are concatenated; each (draw, user) is its own group.

    Returns:
      (the examples, the inputs fitted on the base of the first draw).
    """
    if draws < 1:
        raise ValueError(f"draws={draws} must be >= 1")
    parts = []
    first = None
    for draw in range(draws):
        ex, inputs = _one_draw(
            train,
            recallers=recallers,
            quota=quota,
            recent_length=recent_length,
            holdout=holdout,
            negatives=negatives,
            like_threshold=like_threshold,
            seed=seed + draw,
            scorers=scorers,
            batch_users=batch_users,
        )
        first = first or inputs
        parts.append(dataclasses.replace(ex, groups=ex.users + draw * train.num_users))
    if draws == 1:
        return parts[0], first
    return (
        Examples(
            users=np.concatenate([p.users for p in parts]),
            items=np.concatenate([p.items for p in parts]),
            groups=np.concatenate([p.groups for p in parts]),
            inputs={k: np.concatenate([p.inputs[k] for p in parts]) for k in parts[0].inputs},
            watched=np.concatenate([p.watched for p in parts]),
            liked=np.concatenate([p.liked for p in parts]),
        ),
        first,
    )


def _one_draw(
    train: Dataset,
    *,
    recallers: Sequence[str],
    quota: int,
    recent_length: int,
    holdout: float,
    negatives: int,
    like_threshold: float,
    seed: int,
    scorers: Sequence[str],
    batch_users: int,
) -> tuple[Examples, RankerInputs]:
    """One held-out draw of `build_examples`."""
    if not 0.0 < holdout < 1.0:
        raise ValueError(f"holdout={holdout} must be in (0, 1)")
    split = per_user_random_split(train, (1.0 - holdout, holdout), seed=seed)
    base, held = split.train, split.test
    inputs = RankerInputs(base, recallers, quota, recent_length, scorers)
    # (user, item) -> rating of the held-out slice.
    key = held.users.astype(np.int64) * train.num_items + held.items
    held_order = np.argsort(key)
    held_keys, held_ratings = key[held_order], held.ratings[held_order]
    rng = np.random.default_rng(seed)
    users = np.unique(held.users).astype(np.int64)
    parts: list[tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]] = []
    for start in range(0, users.size, batch_users):
        batch = users[start : start + batch_users]
        scores = inputs.recaller_scores(batch)  # [R, B, I], -inf on the base history
        recalled, _ = inputs.candidates(scores)
        drawn = rng.integers(train.num_items, size=(batch.size, negatives))
        unseen = np.isfinite(scores[0][np.arange(batch.size)[:, None], drawn])
        drawn = np.where(unseen, drawn, -1)
        items = np.concatenate([recalled, drawn], axis=1)
        # A drawn item the recall stage already proposed appears once.
        sorted_items = np.sort(items, axis=1)
        dup = np.zeros_like(items, dtype=bool)
        dup[:, 1:] = (sorted_items[:, 1:] == sorted_items[:, :-1]) & (sorted_items[:, 1:] >= 0)
        items = np.where(dup, -1, sorted_items)
        feats = inputs.features(batch, items, scores)
        valid = items >= 0
        rows = np.broadcast_to(batch[:, None], items.shape)[valid]
        parts.append((rows, items[valid], {k: v[valid] for k, v in feats.items()}))
    pair_users = np.concatenate([p[0] for p in parts])
    pair_items = np.concatenate([p[1] for p in parts])
    flat = {k: np.concatenate([p[2][k] for p in parts]) for k in parts[0][2]}
    pair_keys = pair_users * train.num_items + pair_items
    pos = np.searchsorted(held_keys, pair_keys).clip(max=max(0, held_keys.size - 1))
    watched = held_keys.size > 0
    watched = (held_keys[pos] == pair_keys) if watched else np.zeros(pair_keys.size, bool)
    liked = watched & (held_ratings[pos] >= like_threshold)
    examples = Examples(
        users=pair_users,
        items=pair_items,
        groups=pair_users,
        inputs=flat,
        watched=watched.astype(np.float32),
        liked=liked.astype(np.float32),
    )
    return examples, inputs
