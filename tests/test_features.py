"""Feature encoder: training-only vocabularies, hand-checked ids, statistics, save/load, errors."""

import dataclasses
import json
import os

import numpy as np
import pytest

from shortrec_jax.data import DataError, Dataset, Ragged, load
from shortrec_jax.data.features import FeatureEncoder
from shortrec_jax.data.fields import FieldSpec, default_ctr_fields
from shortrec_jax.data.splits import random_split

# Four users, three items; rows 0-3 train, rows 4-5 test (user u4 and item i3 are cold).
USERS = [0, 1, 2, 0, 3, 1]
ITEMS = [0, 1, 0, 1, 2, 0]
RATINGS = [5, 3, 4, 2, 4, 1]

FIELDS = [
    FieldSpec("user_id", "categorical"),
    FieldSpec("item_id", "categorical"),
    FieldSpec("gender", "categorical"),
    FieldSpec("age", "categorical"),
    FieldSpec("studio", "categorical"),
    FieldSpec("year", "numeric"),
    FieldSpec("genres", "multi_hot"),
    FieldSpec("vec", "dense", column="item_vectors"),
    FieldSpec("year_b", "numeric", column="year", buckets=2),
]


def _toy() -> Dataset:
    return Dataset(
        name="toy",
        users=np.array(USERS, dtype=np.int32),
        items=np.array(ITEMS, dtype=np.int32),
        ratings=np.array(RATINGS, dtype=np.float32),
        timestamps=np.arange(6, dtype=np.int64),
        user_ids=np.array(["u1", "u2", "u3", "u4"]),
        item_ids=np.array(["i1", "i2", "i3"]),
        user_features={
            "gender": np.array(["F", "M", "F", "X"]),  # X only in test
            "age": np.array(["20", "30", "", "40"]),  # "" missing
        },
        item_categorical={"studio": np.array(["A", "B", "C"])},
        item_multi_hot={
            "genres": Ragged.from_lists([["Drama", "Comedy"], ["Comedy"], ["Horror", "Drama"]])
        },
        item_numeric={"year": np.array([2000, 1990, np.nan], dtype=np.float32)},
        item_vectors=np.array([[1, 2], [3, 4], [5, 6]], dtype=np.float32),
    )


def _fit():
    ds = _toy()
    train, test = ds.take(np.arange(4)), ds.take(np.arange(4, 6))
    return FeatureEncoder.fit(train, FIELDS), train, test


# Shared vocabulary, by hand (values of training users/items only, sorted, id 0 reserved):
#   user_id [0, 4):  0 unk, u1 1, u2 2, u3 3         item_id [4, 7):  4 unk, i1 5, i2 6
#   gender  [7, 10): 7 unk, F 8, M 9                 age     [10, 13): 10 unk, "20" 11, "30" 12
#   studio  [13, 16): 13 unk, A 14, B 15             genres  [16, 19): 16 pad, Comedy 17, Drama 18
#   year_b  [19, 22): 19 NaN, <1995 20, >=1995 21 (median of training years 2000, 1990, 2000, 1990)
# year: training interactions see 2000, 1990, 2000, 1990 -> mean 1995, std 5.


def test_spec_and_vocabularies_from_training_only():
    enc, _, _ = _fit()
    assert enc.spec.vocab_size == 22
    assert enc.spec.cat_fields == ("user_id", "item_id", "gender", "age", "studio", "year_b")
    assert enc.spec.multi_fields == ("genres",)
    assert enc.spec.multi_len == 2
    assert enc.spec.numeric_fields == ("year",)
    assert enc.spec.dense_fields == ("vec",) and enc.spec.dense_dims == (2,)
    assert enc.vocabulary("user_id").tolist() == ["u1", "u2", "u3"]
    assert enc.vocabulary("gender").tolist() == ["F", "M"]
    assert enc.vocabulary("age").tolist() == ["20", "30"]  # "" is missing, not a value
    assert enc.vocabulary("genres").tolist() == ["Comedy", "Drama"]  # Horror only in test
    assert [enc.offset(f) for f in ("user_id", "item_id", "genres", "year_b")] == [0, 4, 16, 19]
    assert enc.statistics("year") == (1995.0, 5.0)


def test_encode_hand_checked():
    enc, train, test = _fit()
    b = enc.encode(test)
    assert set(b) == {"cat", "multi", "multi_mask", "num", "dense", "label", "weight"}
    # Row 0: u4 (unseen) with i3 (unseen, year NaN, genres Horror (unseen) + Drama).
    # Row 1: u2 (M, 30) with i1 (A, 2000, Drama + Comedy).
    np.testing.assert_array_equal(b["cat"], [[0, 4, 7, 10, 13, 19], [2, 5, 9, 12, 14, 21]])
    np.testing.assert_array_equal(b["multi"], [[[18, 16]], [[18, 17]]])
    np.testing.assert_array_equal(b["multi_mask"], [[[1, 0]], [[1, 1]]])
    np.testing.assert_allclose(b["num"], [[0.0], [1.0]])  # NaN -> the training mean -> 0
    np.testing.assert_array_equal(b["dense"], [[5, 6], [1, 2]])
    np.testing.assert_array_equal(b["label"], [1, 0])  # ratings 4, 1 against >= 4
    np.testing.assert_array_equal(b["weight"], [1, 1])
    for key, dtype in [("cat", np.int32), ("multi", np.int32), ("multi_mask", np.float32)]:
        assert b[key].dtype == dtype
    for key in ("num", "dense", "label", "weight"):
        assert b[key].dtype == np.float32
    tb = enc.encode(train, label=lambda d: d.ratings >= 3)
    np.testing.assert_array_equal(tb["label"], [1, 1, 1, 0])
    np.testing.assert_allclose(tb["num"][:, 0], [1, -1, 1, -1])
    np.testing.assert_array_equal(tb["cat"][:, 5], [21, 20, 21, 20])


def test_encode_pairs_unknown_users_and_items():
    enc, train, _ = _fit()
    b = enc.encode_pairs(np.array([-1, 0, 7]), np.array([0, -1, 2]), train)
    assert "label" not in b
    np.testing.assert_array_equal(
        b["cat"],
        [
            [0, 5, 7, 10, 14, 21],  # unknown user, item i1
            [1, 4, 8, 11, 13, 19],  # u1, unknown item: every item field reserved
            [0, 4, 7, 10, 13, 19],  # index 7 is beyond the 4 users; i3 is unseen
        ],
    )
    np.testing.assert_array_equal(b["multi"][1], [[16, 16]])
    np.testing.assert_array_equal(b["multi_mask"][1], [[0, 0]])
    np.testing.assert_array_equal(b["num"][1], [0.0])
    np.testing.assert_array_equal(b["dense"][1], [0.0, 0.0])
    with pytest.raises(ValueError, match="users and items"):
        enc.encode_pairs(np.zeros(2, int), np.zeros(3, int), train)


def test_values_are_matched_by_raw_id_across_loads():
    enc = _fit()[0]
    ds = _toy()
    # The same catalogue with the items listed in reverse order.
    rev = dataclasses.replace(
        ds,
        items=(2 - ds.items).astype(np.int32),
        item_ids=ds.item_ids[::-1].copy(),
        item_categorical={"studio": ds.item_categorical["studio"][::-1].copy()},
        item_multi_hot={"genres": ds.item_multi_hot["genres"].take(np.array([2, 1, 0]))},
        item_numeric={"year": ds.item_numeric["year"][::-1].copy()},
        item_vectors=ds.item_vectors[::-1].copy(),
    )
    a, b = enc.encode(ds), enc.encode(rev)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_external_dense_array_follows_item_ids():
    ds = _toy()
    emb = np.arange(9, dtype=np.float32).reshape(3, 3)
    enc = FeatureEncoder.fit(
        ds.take(np.arange(4)), [FieldSpec("emb", "dense")], item_arrays={"emb": emb}
    )
    assert enc.spec.cat_fields == () and enc.spec.dense_dims == (3,)
    other = dataclasses.replace(ds, item_ids=np.array(["i3", "i1", "new"]))
    b = enc.encode_pairs(np.zeros(3, int), np.arange(3), other)
    np.testing.assert_array_equal(b["dense"], [emb[2], emb[0], np.zeros(3)])
    assert b["cat"].shape == (3, 0) and b["multi"].shape == (3, 0, 1)


def test_save_load_round_trip(tmp_path):
    enc, train, test = _fit()
    path = tmp_path / "run" / "encoder.json"
    enc.save(path)
    assert sorted(os.listdir(path.parent)) == ["encoder.json", "encoder.npz"]  # no temp files
    json.loads(path.read_text())
    np.load(path.with_suffix(".npz"), allow_pickle=False).close()
    back = FeatureEncoder.load(path)
    assert back.spec == enc.spec
    assert back.fields == enc.fields
    for part in (train, test):
        a, b = enc.encode(part), back.encode(part)
        assert a.keys() == b.keys()
        for key in a:
            assert a[key].dtype == b[key].dtype
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert back.statistics("year") == enc.statistics("year")


def test_load_refuses_mismatched_or_missing_files(tmp_path):
    enc, train, _ = _fit()
    enc.save(tmp_path / "a.json")
    other = FeatureEncoder.fit(train, FIELDS[:2])
    other.save(tmp_path / "b.json")
    os.replace(tmp_path / "b.npz", tmp_path / "a.npz")
    with pytest.raises(DataError, match="does not match"):
        FeatureEncoder.load(tmp_path / "a.json")
    with pytest.raises(DataError, match="cannot read"):
        FeatureEncoder.load(tmp_path / "missing.json")


def test_errors_name_the_field():
    ds = _toy()
    with pytest.raises(DataError, match=r"field 'height'.*no categorical column 'height'"):
        FeatureEncoder.fit(ds, [FieldSpec("height", "categorical")])
    with pytest.raises(DataError, match=r"field 'tags'.*no multi-hot item column 'moods'"):
        FeatureEncoder.fit(ds, [FieldSpec("tags", "multi_hot", column="moods")])
    with pytest.raises(DataError, match=r"field 'weight'.*no numeric item column"):
        FeatureEncoder.fit(ds, [FieldSpec("weight", "numeric")])
    with pytest.raises(DataError, match=r"field 'sift'.*item_arrays"):
        FeatureEncoder.fit(ds, [FieldSpec("sift", "dense")])
    with pytest.raises(DataError, match="field 'x': kind 'ordinal'"):
        FieldSpec("x", "ordinal")
    with pytest.raises(DataError, match="repeated: \\['age'\\]"):
        FeatureEncoder.fit(ds, [FieldSpec("age", "categorical")] * 2)
    both = dataclasses.replace(ds, item_categorical={"age": np.array(["1", "2", "3"])})
    with pytest.raises(DataError, match=r"field 'age'.*both a user and an item column"):
        FeatureEncoder.fit(both, [FieldSpec("age", "categorical")])
    assert FeatureEncoder.fit(both, [FieldSpec("age", "categorical", side="item")]).vocabulary(
        "age"
    ).tolist() == ["1", "2", "3"]
    enc, _, _ = _fit()
    with pytest.raises(DataError, match="unknown feature field 'nope'"):
        enc.vocabulary("nope")
    lacking = dataclasses.replace(ds, item_numeric={})
    with pytest.raises(DataError, match="field 'year'"):
        enc.encode(lacking)


def test_default_ctr_fields_on_movielens():
    ds = load("ml-100k")
    fields = default_ctr_fields(ds, year_buckets=4)
    names = [f.name for f in fields]
    assert names == [
        "user_id",
        "item_id",
        "age",
        "gender",
        "occupation",
        "year",
        "year_bucket",
        "genres",
    ]
    split = random_split(ds, seed=0)
    enc = FeatureEncoder.fit(split.train, fields)
    b = enc.encode(split.test)
    spec = enc.spec
    n = split.test.num_interactions
    assert b["cat"].shape == (n, 6) and b["multi"].shape == (n, 1, spec.multi_len)
    assert b["num"].shape == (n, 1) and b["dense"].shape == (n, 0)
    assert b["cat"].min() >= 0 and b["cat"].max() < spec.vocab_size
    assert b["multi"].max() < spec.vocab_size
    assert np.all(np.isfinite(b["num"]))
    # Each column stays inside its own field's id range.
    ends = {name: enc.offset(name) + (enc.vocabulary(name).size + 1) for name in names[:5]}
    for k, name in enumerate(names[:5]):
        assert enc.offset(name) <= b["cat"][:, k].min() and b["cat"][:, k].max() < ends[name]
    # Test items that never occur in training (the split's report) get the reserved item id.
    cold = split.report["test"].items
    unseen = np.unique(split.test.items[b["cat"][:, 1] == enc.offset("item_id")]).size
    assert unseen == cold > 0
    np.testing.assert_allclose(b["label"].mean(), np.mean(split.test.ratings >= 4))
