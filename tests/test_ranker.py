"""The trained ranking stage: its examples come from the training part only, its labels and
losses by hand."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from shortrec_jax.data.build import build_dataset
from shortrec_jax.data.dataset import Dataset
from shortrec_jax.data.splits import per_user_random_split
from shortrec_jax.pipeline.ranker import (
    RankerConfig,
    TrainedRankerMethod,
    listwise_loss,
    make_ranker_method,
    two_head_loss,
)
from shortrec_jax.pipeline.ranker_data import Statistics, build_examples

SMALL = dict(quota=5, recent_length=3, negatives=3, draws=1, epochs=1, batch_size=64, hidden=(8,))


def log(seed: int, num_users: int = 30, num_items: int = 25, density: float = 0.4) -> Dataset:
    """Ratings 1-5 with times on a random share of the pairs."""
    rng = np.random.default_rng(seed)
    users, items = np.nonzero(rng.random((num_users, num_items)) < density)
    return build_dataset(
        "log",
        users.astype(str),
        items.astype(str),
        rng.integers(1, 6, users.size).astype(np.float32),
        rng.integers(0, 10_000_000, users.size),
        source="test",
        user_ids=np.arange(num_users).astype(str),
        item_ids=np.arange(num_items).astype(str),
    )


def pairs(data: Dataset) -> set[tuple[int, int]]:
    return set(zip(data.users.tolist(), data.items.tolist(), strict=True))


def test_examples_hold_no_validation_or_test_interaction():
    data = log(0)
    split = per_user_random_split(data, (0.8, 0.1, 0.1), seed=1)
    method = make_ranker_method("ranker", SMALL, seed=3).fit(split.train, split.valid)
    ex = method.examples
    example_pairs = set(zip(ex.users.tolist(), ex.items.tolist(), strict=True))
    held_out = pairs(split.valid) | pairs(split.test)
    # Every positive label is a training interaction, never a validation or test one.
    hit = ex.watched > 0
    positives = set(zip(ex.users[hit].tolist(), ex.items[hit].tolist(), strict=True))
    assert positives and positives <= pairs(split.train)
    assert not positives & held_out
    # Liked implies watched.
    assert np.all(ex.liked <= ex.watched)
    # The examples are a function of the training part alone: built from it with no
    # validation or test part at all, they are the same.
    c = method.config
    again = c.examples(split.train, seed=3)
    np.testing.assert_array_equal(again.items, ex.items)
    np.testing.assert_array_equal(again.watched, ex.watched)
    for key, value in ex.inputs.items():
        np.testing.assert_array_equal(again.inputs[key], value)
    # Unwatched examples are pairs outside the training part; the statistics an example
    # carries are those of the base history (a subset of training), never of held-out data.
    assert not (example_pairs - positives) & pairs(split.train)


def test_labels_by_hand_on_a_tiny_log():
    # Two users, 5 ratings each (times 1..5); holdout 0.2 holds out one rating per user.
    rows = [(0, i, r) for i, r in zip(range(5), (5, 2, 4, 1, 5), strict=True)]
    rows += [(1, i, r) for i, r in zip(range(3, 8), (3, 4, 2, 5, 1), strict=True)]
    users, items, ratings = (np.array(c) for c in zip(*rows, strict=True))
    train = build_dataset(
        "tiny",
        users.astype(str),
        items.astype(str),
        ratings.astype(np.float32),
        np.arange(1, users.size + 1),
        source="test",
        user_ids=np.array(["0", "1"]),
        item_ids=np.arange(10).astype(str),
    )
    rating = {(u, i): r for u, i, r in rows}
    ex, inputs = build_examples(
        train,
        recallers=("pop", "item-cf"),
        quota=10,
        recent_length=2,
        holdout=0.2,
        negatives=4,
        like_threshold=4.0,
        seed=0,
    )
    got = list(zip(ex.users.tolist(), ex.items.tolist(), strict=True))
    # The base history is never a candidate, so a training pair among the examples is
    # exactly the held-out one: watched; liked when its rating is 4 or 5.
    for (u, i), w, like in zip(got, ex.watched, ex.liked, strict=True):
        assert w == ((u, i) in rating)
        assert like == ((u, i) in rating and rating[u, i] >= 4)
    # One rating per user is held out and pop recalls every item the base has: both found.
    assert ex.watched.sum() == 2
    assert len(set(got)) == len(got)
    # The base history (4 of 5 per user) is what the statistics see: each user's recent
    # field holds its 2 latest base items, newest first (ids are index + 1).
    held = {(u, i) for (u, i), w in zip(got, ex.watched, strict=True) if w}
    for u in (0, 1):
        base = [i for uu, i, _ in rows if uu == u and (u, i) not in held]
        np.testing.assert_array_equal(inputs.stats.recent[u], np.array(base[::-1][:2]) + 1)


def test_statistics_by_hand():
    train = build_dataset(
        "tiny",
        np.array(["a", "a", "b"]),
        np.array(["x", "y", "x"]),
        np.array([5.0, 3.0, 1.0], np.float32),
        np.array([0, 86_400, 2 * 86_400]),
        source="test",
    )
    stats = Statistics.fit(train, recent_length=3)
    mu = 3.0
    # user a: 2 ratings (percentile 0.5: one user below), mean 4, last seen 1 day before the
    # newest interaction; user b: 1 rating, mean 1, 0 days.
    np.testing.assert_allclose(stats.user[0], [0.5, 4 - mu, np.log1p(1.0)], rtol=1e-6)
    np.testing.assert_allclose(stats.user[1], [0.0, 1 - mu, 0.0], atol=1e-6)
    # item x: ratings 5 and 1, damped by 10 pseudo-ratings at mu: (6 + 30) / 12 = 3.
    np.testing.assert_allclose(stats.item[0], [0.5, 0.0, 0.0, np.log1p(2.0)], atol=1e-6)
    np.testing.assert_array_equal(stats.recent, [[2, 1, 0], [1, 0, 0]])


def test_losses_by_hand():
    logits = jnp.zeros((3, 2))
    watched = jnp.array([1.0, 0.0, 1.0])
    liked = jnp.array([1.0, 0.0, 0.0])
    # Every BCE is log 2 at logit 0: watch over the 2 weighted examples, like over the one
    # weighted watched example.
    weight = jnp.array([1.0, 1.0, 0.0])
    assert float(two_head_loss(logits, watched, liked, weight)) == pytest.approx(2 * np.log(2))
    logits = jnp.array([[[2.0, 0.0], [0.0, 0.0], [5.0, 0.0]]])  # one user, 3 slots
    mask = jnp.array([[1.0, 1.0, 0.0]])  # the third slot is padding
    loss = listwise_loss(logits, jnp.array([[0.0, 1.0, 1.0]]), jnp.zeros((1, 3)), mask)
    # -log softmax(2, 0)[1] = log(1 + e^2), then the like head's log 2 on the one positive.
    assert float(loss) == pytest.approx(np.log1p(np.exp(2.0)) + np.log(2), rel=1e-5)


def test_ranked_lists_come_from_the_candidates_and_stages_differ():
    data = log(2)
    split = per_user_random_split(data, (0.8, 0.2), seed=0)
    users = np.arange(5)
    ranked = TrainedRankerMethod(RankerConfig(**SMALL), seed=0).fit(split.train)
    recall = make_ranker_method("ranker-recall", SMALL, seed=0).fit(split.train)
    a, b = ranked.score_all(users), recall.score_all(users)
    # Both score the same candidates above 1 and everything else 0 (already seen included).
    np.testing.assert_array_equal(a > 0, b > 0)
    assert np.all(a[a > 0] > 1)
    seen = split.train.users < 5
    assert np.all(a[split.train.users[seen], split.train.items[seen]] == 0)
    given = ranked.score(users, np.tile(np.arange(4), (5, 1)))
    assert given.shape == (5, 4) and np.all((given > 0) & (given < 1))
    with pytest.raises(ValueError, match="unknown fields"):
        make_ranker_method("ranker", {"quotas": 3}, seed=0)
