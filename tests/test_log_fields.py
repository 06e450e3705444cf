"""Fields fitted on the training log (data/log_fields.py): user and item statistics and the
user's history bag, by hand on a tiny log; their leave-one-out and own-item rules; that they
come from the training part only; and the CTR method's refit."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from shortrec_jax.data import load
from shortrec_jax.data.dataset import DataError, Dataset
from shortrec_jax.data.features import FeatureEncoder
from shortrec_jax.data.fields import FieldSpec
from shortrec_jax.data.splits import random_split, subsample
from shortrec_jax.evaluation.registry import make_method


@pytest.fixture
def log() -> Dataset:
    """User a rated x 5 (t=10), y 3 (t=30), z 4 (t=20); user b rated x 2 (t=5), z 4 (t=6).
    User c and item w have no rating."""
    return Dataset(
        name="tiny",
        users=np.array([0, 0, 0, 1, 1], np.int32),
        items=np.array([0, 1, 2, 0, 2], np.int32),
        ratings=np.array([5, 3, 4, 2, 4], np.float32),
        timestamps=np.array([10, 30, 20, 5, 6], np.int64),
        user_ids=np.array(["a", "b", "c"]),
        item_ids=np.array(["x", "y", "z", "w"]),
    )


def _stat(column: str, **options) -> FieldSpec:
    return FieldSpec(column, "statistic", column=column, **options)


def _raw_values(enc: FeatureEncoder, batch: dict, name: str) -> np.ndarray:
    """The unstandardised values of a standardised statistic's column of `batch["num"]`."""
    col = enc.spec.numeric_fields.index(name)
    mean, std = enc.statistics(name)
    return batch["num"][:, col].astype(np.float64) * std + mean


def test_statistics_by_hand_leave_each_training_example_out_of_its_own(log):
    fields = [
        _stat("user_count"),
        _stat("user_mean", prior=1.0),
        _stat("item_like_share", threshold=4.0, prior=2.0),
        _stat("item_mean"),
    ]
    enc = FeatureEncoder.fit(log, fields)
    g_mean, g_like = 18 / 5, 3 / 5  # the log's mean rating and share of ratings >= 4

    train = enc.encode(log, leave_out=True)
    # Each training example sees its user's and item's *other* ratings.
    np.testing.assert_allclose(
        _raw_values(enc, train, "user_count"), np.log1p([2, 2, 2, 1, 1]), rtol=1e-5
    )
    other_user_mean = [(3 + 4 + g_mean) / 3, (5 + 4 + g_mean) / 3, (5 + 3 + g_mean) / 3]
    other_user_mean += [(4 + g_mean) / 2, (2 + g_mean) / 2]
    np.testing.assert_allclose(_raw_values(enc, train, "user_mean"), other_user_mean, rtol=1e-5)
    # x's other rating: 2 (b) for a's example, 5 (a) for b's; y has no other; z's likes.
    like = [(0 + 2 * g_like) / 3, g_like, (1 + 2 * g_like) / 3, (1 + 2 * g_like) / 3]
    like += [(1 + 2 * g_like) / 3]
    np.testing.assert_allclose(_raw_values(enc, train, "item_like_share"), like, rtol=1e-5)
    # Without a prior, an item with no other rating gets the global mean.
    np.testing.assert_allclose(
        _raw_values(enc, train, "item_mean"), [2, g_mean, 4, 5, 4], rtol=1e-5
    )

    # A pair to score sees everything the log holds; an unknown user or item the prior.
    pairs = enc.encode_pairs(np.array([0, 2, 1]), np.array([1, 3, 0]), log)
    np.testing.assert_allclose(
        _raw_values(enc, pairs, "user_count"), np.log1p([3, 0, 2]), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        _raw_values(enc, pairs, "user_mean"),
        [(12 + g_mean) / 4, g_mean, (6 + g_mean) / 3],
        rtol=1e-5,
    )
    np.testing.assert_allclose(_raw_values(enc, pairs, "item_mean"), [3, g_mean, 3.5], rtol=1e-5)
    # Standardised over the training examples as they are encoded.
    np.testing.assert_allclose(train["num"].mean(axis=0), 0.0, atol=1e-6)


def test_bucketised_statistic_is_a_categorical_column(log):
    enc = FeatureEncoder.fit(
        log, [FieldSpec("user_id", "categorical"), _stat("item_count", buckets=2)]
    )
    assert enc.spec.cat_fields == ("user_id", "item_count")
    # Leave-one-out item counts 1, 0, 1, 1, 1: the median edge is log(2), so 0 -> the first
    # bucket (local id 1) and log(2) -> the second (local id 2).
    off = enc.offset("item_count")
    cat = enc.encode(log, leave_out=True)["cat"]
    np.testing.assert_array_equal(cat[:, 1] - off, [2, 1, 2, 2, 2])


def test_leave_out_refuses_interactions_the_encoder_was_not_fitted_on(log):
    # Fitted on user a's ratings only: user b's interactions cannot be left out of a count
    # that does not hold them.
    enc = FeatureEncoder.fit(log.take(np.array([0, 1, 2])), [_stat("user_count")])
    with pytest.raises(DataError, match="leave_out"):
        enc.encode(log.take(np.array([3, 4])), leave_out=True)
    enc.encode(log.take(np.array([3, 4])))  # held-out pairs: no leave-out, no error


def _bag(enc: FeatureEncoder, batch: dict, name: str) -> list[list[str]]:
    """Each row's bag as raw item ids, in slot order."""
    k = enc.spec.multi_fields.index(name)
    vocab, off = enc.vocabulary(name), enc.offset(name)
    return [
        [str(vocab[i - off - 1]) for i, m in zip(ids, mask, strict=True) if m]
        for ids, mask in zip(batch["multi"][:, k], batch["multi_mask"][:, k], strict=True)
    ]


def test_history_bags_by_hand_never_hold_the_examples_own_item(log):
    fields = [
        FieldSpec("genre_free_id", "categorical", column="item_id"),
        FieldSpec("liked", "history", column="liked", threshold=4.0, length=5),
        FieldSpec("recent", "history", column="rated", length=2),
    ]
    enc = FeatureEncoder.fit(log, fields)
    assert enc.spec.multi_fields == ("liked", "recent") and enc.spec.multi_len == 2
    train = enc.encode(log, leave_out=True)
    # a liked x (t=10) and z (t=20): most recent first; b liked z. The example's own item is
    # left out: a's x example has only z, b's z example an empty bag.
    assert _bag(enc, train, "liked") == [["z"], ["z", "x"], ["x"], ["z"], []]
    # The two most recent rated: a's y (t=30), z (t=20); b's z (t=6), x (t=5).
    assert _bag(enc, train, "recent") == [["y", "z"], ["z"], ["y"], ["z"], ["x"]]
    # Pairs to score: a held-out item (w) sees the whole bag; an unknown user an empty one.
    pairs = enc.encode_pairs(np.array([0, 2]), np.array([3, 0]), log)
    assert _bag(enc, pairs, "liked") == [["z", "x"], []]
    assert _bag(enc, pairs, "recent") == [["y", "z"], []]


def test_a_history_can_take_the_item_id_fields_ids(log):
    fields = [
        FieldSpec("item_id", "categorical"),
        FieldSpec("liked", "history", column="liked", threshold=4.0, length=5, ids_of="item_id"),
    ]
    enc = FeatureEncoder.fit(log, fields)
    # The bag owns no ids: its items are embedded by the item id field's rows.
    assert enc.spec.vocab_size == 4  # the item id field's: reserved, x, y, z (w is unrated)
    pairs = enc.encode_pairs(np.array([0, 0]), np.array([3, 0]), log)
    item_ids = enc.encode_pairs(np.array([0, 0]), np.array([2, 0]), log)["cat"][:, 0]
    # a's bag for the unrated w: z then x, with the ids the item id field gives z and x; for
    # x itself: z alone.
    np.testing.assert_array_equal(pairs["multi"][0, 0, :2], item_ids)
    np.testing.assert_array_equal(pairs["multi_mask"][:, 0], [[1, 1], [1, 0]])
    with pytest.raises(DataError, match="ids_of"):
        FeatureEncoder.fit(log, [fields[1]])


def test_log_fields_survive_save_and_load(log, tmp_path):
    fields = [
        FieldSpec("user_id", "categorical"),
        _stat("user_mean", prior=1.0),
        _stat("item_count", buckets=2),
        FieldSpec("liked", "history", column="liked", threshold=4.0, length=3),
    ]
    enc = FeatureEncoder.fit(log, fields)
    enc.save(tmp_path / "enc.json")
    again = FeatureEncoder.load(tmp_path / "enc.json")
    assert again.spec == enc.spec
    for leave_out in (False, True):
        a, b = enc.encode(log, leave_out=leave_out), again.encode(log, leave_out=leave_out)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (dict(name="s", kind="statistic", column="user_median"), "statistic"),
        (dict(name="h", kind="history", column="rated"), "length"),
        (dict(name="h", kind="history", column="watched", length=3), "history"),
        (dict(name="n", kind="numeric", prior=2.0), "prior"),
        (dict(name="n", kind="numeric", length=2), "length"),
    ],
)
def test_bad_log_field_declarations_name_the_field(spec, message):
    with pytest.raises(DataError, match=message):
        FieldSpec(**spec)


def test_log_fields_come_from_the_training_part_only():
    """Leakage: whatever the test part holds, the fitted fields, and so every encoded test
    pair, are those of the training part alone."""
    data = subsample(load("ml-100k"), 0.1, seed=0)
    data = dataclasses.replace(data, extra={"row": np.arange(data.num_interactions)})
    split = random_split(data, (0.8, 0.2), seed=4)
    fields = [
        _stat(c, threshold=4.0, prior=5.0)
        for c in ("user_count", "user_mean", "user_like_share", "item_count", "item_mean")
    ]
    fields += [FieldSpec("liked", "history", column="liked", threshold=4.0, length=20)]
    enc = FeatureEncoder.fit(split.train, fields)
    test_rows = split.test.extra["row"]
    # The data with every test rating flipped (1 <-> 5, 2 <-> 4), split again (the random
    # split draws the same rows); and the data with its test rows removed.
    flipped = data.ratings.copy()
    flipped[test_rows] = 6.0 - flipped[test_rows]
    other = random_split(dataclasses.replace(data, ratings=flipped), (0.8, 0.2), seed=4)
    removed = data.take(np.setdiff1d(np.arange(data.num_interactions), test_rows))
    expected = enc.encode_pairs(split.test.users, split.test.items, data)
    for train in (other.train, removed):
        again = FeatureEncoder.fit(train, fields)
        got = again.encode_pairs(split.test.users, split.test.items, data)
        for key in expected:
            np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
    # By hand: a test pair's user count is the user's number of training ratings.
    counts = np.expm1(_raw_values(enc, expected, "user_count"))
    by_hand = np.bincount(split.train.users, minlength=data.num_users)[split.test.users]
    np.testing.assert_allclose(counts, by_hand, atol=1e-3)


def test_refit_trains_on_the_whole_training_part_for_the_chosen_epochs(tmp_path):
    data = subsample(load("ml-100k"), 0.1, seed=0)
    split = random_split(data, (0.8, 0.2), seed=0)
    batch = 256
    overrides = {
        "data": {"statistics": ("item_mean", "user_mean"), "histories": ("liked",)},
        "model": {"embed_dim": 4, "cin_layers": (8, 8), "mlp_layers": (16,)},
        "train": {
            "batch_size": batch,
            "num_epochs": 3,
            "warmup_steps": 2,
            "max_steps_in_flight": 1,
        },
    }
    config = {"train_config": "configs/xdeepfm_ml100k.py", "overrides": overrides, "refit": True}
    method = make_method("xdeepfm", config, seed=1, workdir=tmp_path / "xdeepfm")
    method.fit(split.train)
    chosen = method.results["selection"]["best_epoch"]
    assert 1 <= chosen <= 3
    assert method.results["refit_epochs"] == chosen == method.results["epochs"]
    # Every refit epoch went over all of the training part (the selection run over 90%).
    steps_per_epoch = -(-split.train.num_interactions // batch)
    assert method.run.step == chosen * steps_per_epoch
    assert (tmp_path / "xdeepfm-refit" / "config.json").exists()
    scores = method.score(np.unique(split.test.users)[:3], np.array([[0, 1], [2, 3], [4, 5]]))
    assert np.all((scores > 0) & (scores < 1))
