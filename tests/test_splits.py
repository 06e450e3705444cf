"""Splits: exact sizes, disjoint parts, seeds, leave-one-out by time, cold-start counts."""

import numpy as np
import pytest

from shortrec_jax.data import Dataset, load
from shortrec_jax.data.splits import (
    ColdStart,
    Split,
    concat,
    leave_one_out,
    make_split,
    per_user_random_split,
    random_split,
    subsample,
    temporal_split,
)


def _dataset(users, items, timestamps=None, num_users=None, num_items=None) -> Dataset:
    """A tiny data set; extra["row"] is each interaction's original position."""
    users = np.asarray(users, dtype=np.int32)
    items = np.asarray(items, dtype=np.int32)
    n = users.size
    num_users = num_users or int(users.max()) + 1
    num_items = num_items or int(items.max()) + 1
    ts = np.zeros(n) if timestamps is None else np.asarray(timestamps)
    return Dataset(
        name="toy",
        users=users,
        items=items,
        ratings=np.full(n, 3.0, dtype=np.float32),
        timestamps=ts.astype(np.int64),
        user_ids=np.array([f"u{i}" for i in range(num_users)]),
        item_ids=np.array([f"i{i}" for i in range(num_items)]),
        extra={"row": np.arange(n)},
    )


def _uniform(n: int, num_users: int = 7, num_items: int = 11) -> Dataset:
    rows = np.arange(n)
    return _dataset(rows % num_users, (rows * 3) % num_items, rows, num_users, num_items)


def _rows(part: Dataset | None) -> np.ndarray:
    return np.zeros(0, dtype=np.int64) if part is None else part.extra["row"]


def _assert_partition(split: Split, n: int) -> None:
    rows = np.concatenate([_rows(p) for p in split.parts().values()])
    np.testing.assert_array_equal(np.sort(rows), np.arange(n))  # disjoint and complete
    for part in split.parts().values():
        assert np.all(np.diff(part.extra["row"]) > 0)  # each part in file order


@pytest.mark.parametrize(
    ("n", "fractions", "sizes"),
    [
        (100, (0.8, 0.2), (80, 20)),
        (100, (0.8, 0.1, 0.1), (80, 10, 10)),
        (7, (0.8, 0.2), (6, 1)),  # floor(0.2 * 7) = 1 test, the rest trains
        (10, (0.7, 0.3), (7, 3)),  # 0.3 * 10 = 3.0000000000000004 -> 3
        (100, (0.71, 0.29), (71, 29)),  # 0.29 * 100 = 28.999999999999996 -> 29, not 28
        (9, (0.6, 0.2, 0.2), (7, 1, 1)),  # 0.2 * 9 = 1.8 -> 1 each, training the other 7
    ],
)
def test_random_split_sizes(n, fractions, sizes):
    split = random_split(_uniform(n), fractions, seed=0)
    got = tuple(p.num_interactions for p in split.parts().values())
    assert got == sizes
    assert (split.valid is None) == (len(fractions) == 2)
    _assert_partition(split, n)


def test_random_split_movielens_is_the_studys_80_20():
    ds = load("ml-100k")
    split = random_split(ds, seed=0)
    assert (split.train.num_interactions, split.test.num_interactions) == (80_000, 20_000)
    assert split.report["test"].users == 0  # every ml-100k user has >= 20 ratings


def test_random_split_reproducible_and_seed_dependent():
    ds = _uniform(200)
    a = random_split(ds, (0.8, 0.1, 0.1), seed=3)
    b = random_split(ds, (0.8, 0.1, 0.1), seed=3)
    c = random_split(ds, (0.8, 0.1, 0.1), seed=4)
    for name in ("train", "valid", "test"):
        np.testing.assert_array_equal(_rows(getattr(a, name)), _rows(getattr(b, name)))
    assert not np.array_equal(_rows(a.test), _rows(c.test))


@pytest.mark.parametrize("fractions", [(0.8,), (0.5, 0.6), (0.8, 0.0, 0.2), (0.5, 0.2, 0.2, 0.1)])
def test_bad_fractions_are_rejected(fractions):
    with pytest.raises(ValueError, match="fractions"):
        random_split(_uniform(10), fractions, seed=0)


def test_per_user_split_follows_recbole_sizes():
    # User 0: 10 interactions, user 1: 2, user 2: 1, user 3: 3, user 4: 20.
    counts = [10, 2, 1, 3, 20]
    users = np.repeat(np.arange(5), counts)
    ds = _dataset(users, np.arange(users.size))
    two = per_user_random_split(ds, (0.8, 0.2), seed=0)
    three = per_user_random_split(ds, (0.8, 0.1, 0.1), seed=0)

    def per_user(part):
        return np.bincount(part.users, minlength=5).tolist()

    # floor(f * n) per later part; a part with f * n in (0, 1) still gets one interaction while
    # training keeps more than one (test first, then valid); a single interaction only trains.
    assert per_user(two.train) == [8, 1, 1, 2, 16]
    assert per_user(two.test) == [2, 1, 0, 1, 4]
    assert per_user(three.train) == [8, 1, 1, 1, 16]
    assert per_user(three.valid) == [1, 0, 0, 1, 2]
    assert per_user(three.test) == [1, 1, 0, 1, 2]
    _assert_partition(two, users.size)
    _assert_partition(three, users.size)


def test_per_user_split_is_seeded():
    users = np.repeat(np.arange(4), 25)
    ds = _dataset(users, np.arange(users.size))
    a = per_user_random_split(ds, seed=1)
    b = per_user_random_split(ds, seed=1)
    c = per_user_random_split(ds, seed=2)
    np.testing.assert_array_equal(_rows(a.test), _rows(b.test))
    assert not np.array_equal(_rows(a.test), _rows(c.test))
    assert np.bincount(a.test.users).tolist() == [5, 5, 5, 5]


def test_temporal_split_cuts_at_time_with_ties_in_file_order():
    ts = [50, 10, 40, 20, 40, 30, 60, 40, 0, 90]
    ds = _dataset(np.zeros(10), np.arange(10), ts)
    split = temporal_split(ds, (0.5, 0.5))
    # Time order: rows 8(0) 1(10) 3(20) 5(30) 2(40) | 4(40) 7(40) 0(50) 6(60) 9(90).
    assert sorted(_rows(split.train).tolist()) == [1, 2, 3, 5, 8]
    assert sorted(_rows(split.test).tolist()) == [0, 4, 6, 7, 9]
    three = temporal_split(ds, (0.6, 0.2, 0.2))
    assert _rows(three.valid).tolist() == [0, 7]
    assert _rows(three.test).tolist() == [6, 9]


def test_leave_one_out_by_time():
    #            user 0 ------------   user 1 ---------  user 2   user 3
    users = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 3]
    ts = [5, 1, 9, 3, 7, 2, 7, 7, 4, 1, 8, 8, 8]
    ds = _dataset(users, np.arange(13), ts)
    split = leave_one_out(ds)
    # User 0: last = ts 9 (row 2), second = ts 5 (row 0). User 1: three rows at ts 7, the
    # later row is later: test row 7, valid row 6. User 2 has 2 < 3 interactions: train only.
    # User 3: all at ts 8 -> file order.
    assert _rows(split.test).tolist() == [2, 7, 12]
    assert _rows(split.valid).tolist() == [0, 6, 11]
    assert _rows(split.train).tolist() == [1, 3, 4, 5, 8, 9, 10]
    _assert_partition(split, 13)

    no_valid = leave_one_out(ds, with_valid=False)
    assert no_valid.valid is None
    assert _rows(no_valid.test).tolist() == [2, 7, 8, 12]  # user 2 has 2 >= 2 now


def test_cold_start_report_and_describe():
    # Train: users 0, 1 with items 0, 1. Test: user 2 (cold) with item 0, user 0 with item 2
    # (cold), user 2 with item 3 (both cold).
    ds = _dataset([0, 1, 1, 2, 0, 2], [0, 1, 0, 0, 2, 3])
    train, test = ds.take(np.arange(3)), ds.take(np.arange(3, 6))
    split = Split(train, None, test, "hand-made")
    assert split.report == {"test": ColdStart(users=1, items=2, interactions=3)}
    text = split.describe()
    assert "hand-made of toy" in text
    assert "cold start: 1 users, 2 items (3 interactions)" in text
    with_valid = Split(train, test.take(np.array([1])), test.take(np.array([0])))
    assert with_valid.report["valid"] == ColdStart(users=0, items=1, interactions=1)
    assert with_valid.report["test"] == ColdStart(users=1, items=0, interactions=1)


def test_subsample_size_order_nesting_and_seed():
    ds = _uniform(101)
    small = subsample(ds, 0.1, seed=5)
    large = subsample(ds, 0.5, seed=5)
    assert small.num_interactions == 10  # floor(10.1)
    assert large.num_interactions == 50
    assert np.all(np.diff(_rows(small)) > 0)
    assert set(_rows(small)) <= set(_rows(large))  # nested for one seed
    np.testing.assert_array_equal(_rows(small), _rows(subsample(ds, 0.1, seed=5)))
    assert not np.array_equal(_rows(small), _rows(subsample(ds, 0.1, seed=6)))
    assert subsample(ds, 1.0, seed=0).num_interactions == 101
    with pytest.raises(ValueError, match="fraction"):
        subsample(ds, 0.0, seed=0)


def test_concat_and_make_split():
    ds = _uniform(30)
    split = make_split(ds, "random", fractions=(0.8, 0.1, 0.1), seed=0)
    both = concat([split.train, split.valid])
    assert both.num_interactions == 27
    np.testing.assert_array_equal(both.extra["row"], np.r_[_rows(split.train), _rows(split.valid)])
    assert make_split(ds, "leave_one_out").valid is not None
    with pytest.raises(ValueError, match="unknown split protocol 'nope'"):
        make_split(ds, "nope")
