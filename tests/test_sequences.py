"""Sequences for BERT4Rec: time order, windows, cloze masks, evaluation inputs."""

import numpy as np
import pytest

from shortrec_jax.data import Dataset
from shortrec_jax.data.sequences import (
    PAD_ID,
    SequenceData,
    cloze_mask,
    cloze_rng,
    eval_inputs,
    history_as_of,
    num_last_item_rows,
    window_rng,
)
from shortrec_jax.data.splits import leave_one_out


def _dataset(users, items, timestamps, num_users, num_items) -> Dataset:
    n = len(users)
    return Dataset(
        name="toy",
        users=np.asarray(users, dtype=np.int32),
        items=np.asarray(items, dtype=np.int32),
        ratings=np.ones(n, dtype=np.float32),
        timestamps=np.asarray(timestamps, dtype=np.int64),
        user_ids=np.array([f"u{i}" for i in range(num_users)]),
        item_ids=np.array([f"i{i}" for i in range(num_items)]),
    )


def _seqs(histories, num_items=20) -> SequenceData:
    """Sequence data whose users have these item-index histories, in this time order."""
    users = np.repeat(np.arange(len(histories)), [len(h) for h in histories])
    items = np.concatenate([np.asarray(h, dtype=np.int32) for h in histories])
    return SequenceData.from_dataset(
        _dataset(users, items, np.arange(users.size), len(histories), num_items)
    )


def test_from_dataset_orders_by_time_then_file_order():
    # User 0: items 3 (t=5), 1 (t=2), 4 (t=5), 0 (t=9); user 1: none; user 2: item 2.
    ds = _dataset([0, 0, 2, 0, 0], [3, 1, 2, 4, 0], [5, 2, 1, 5, 9], num_users=3, num_items=5)
    seqs = SequenceData.from_dataset(ds)
    assert seqs.mask_id == 6 and seqs.vocab_size == 7
    assert seqs.history(0).tolist() == [2, 4, 5, 1]  # item index + 1; the t=5 tie in file order
    assert seqs.history(1).tolist() == []
    assert seqs.history(2).tolist() == [3]
    assert seqs.lengths().tolist() == [4, 0, 1]


def test_train_windows_pad_left_and_keep_the_last_items():
    seqs = _seqs([[0, 1], [0, 1, 2, 3, 4, 5, 6], [], [9]])
    w = seqs.train_windows(4)
    assert w.dtype == np.int32
    np.testing.assert_array_equal(w, [[0, 0, 1, 2], [4, 5, 6, 7], [0, 0, 0, 10]])
    np.testing.assert_array_equal(seqs.train_windows(4, min_len=2), w[:2])


@pytest.mark.parametrize(
    ("stride", "expected"),
    [
        # 7 items (ids 1..7), L = 3: 1 + ceil(4 / 2) = 3 windows, ending at 3, 5, 7.
        (2, [[1, 2, 3], [3, 4, 5], [5, 6, 7]]),
        # stride 3: 1 + ceil(4 / 3) = 3 windows, ending at 1, 4, 7.
        (3, [[0, 0, 1], [2, 3, 4], [5, 6, 7]]),
        # stride 4: ending at 3, 7.
        (4, [[1, 2, 3], [5, 6, 7]]),
    ],
)
def test_sliding_windows(stride, expected):
    seqs = _seqs([list(range(7)), [0, 1]])
    w = seqs.train_windows(3, stride=stride)
    np.testing.assert_array_equal(w, [*expected, [0, 1, 2]])  # the short history: one window


def test_window_jitter_moves_every_earlier_window_end_by_less_than_the_stride():
    # Ids 1..12, L = 4, stride 2: 1 + ceil(8 / 2) = 5 windows ending at ids 4, 6, 8, 10, 12.
    seqs = _seqs([list(range(12)), [0, 1]])
    plain = seqs.train_windows(4, stride=2, min_len=2)
    last_ids = set()
    for epoch in range(40):
        w = seqs.train_windows(4, stride=2, min_len=2, jitter_rng=window_rng(7, epoch))
        assert w.shape == plain.shape
        # The earliest window already holds 4 items from the first: it cannot move. The
        # user's latest window and the short history's only window never move.
        np.testing.assert_array_equal(w[[0, 4, 5]], plain[[0, 4, 5]])
        for row, end in zip(w[1:4], (6, 8, 10), strict=True):
            assert row[-1] in (end, end + 1)
            np.testing.assert_array_equal(row, np.arange(row[-1] - 3, row[-1] + 1))
        # 2 * stride - 1 <= L: the windows still cover the whole history.
        assert set(w[:5].ravel()) - {PAD_ID} == set(range(1, 13))
        last_ids.update(int(row[-1]) for row in w[:5])
    # Over the epochs every item after the first L + stride - 1 ends a window, not only every
    # stride-th.
    assert last_ids == {4, *range(6, 13)}
    np.testing.assert_array_equal(
        seqs.train_windows(4, stride=2, min_len=2, jitter_rng=window_rng(7, 3)),
        seqs.train_windows(4, stride=2, min_len=2, jitter_rng=window_rng(7, 3)),
    )


def test_window_jitter_keeps_the_first_item_and_never_opens_a_gap():
    # 8 items, L = 6, stride 3: windows end at ids 5 and 8. The first may move up to
    # min(3, 6 - 3 + 1) - 1 = 2 items, but only 1 keeps the first item in it.
    seqs = _seqs([list(range(8))])
    firsts = {
        tuple(seqs.train_windows(6, stride=3, jitter_rng=window_rng(0, e))[0]) for e in range(30)
    }
    assert firsts == {(0, 1, 2, 3, 4, 5), (1, 2, 3, 4, 5, 6)}
    # 11 items, L = 4, stride 3: windows end at ids 2, 5, 8, 11. A window ending 2 items
    # later than 5 would start at id 4, after the earlier window's end at 2 (if unmoved) + 1:
    # ends move by min(3, 4 - 3 + 1) - 1 = 1 at most, and every item stays in a window.
    seqs = _seqs([list(range(11))])
    for epoch in range(30):
        w = seqs.train_windows(4, stride=3, jitter_rng=window_rng(0, epoch))
        assert w[1, -1] in (5, 6) and w[2, -1] in (8, 9) and w[3, -1] == 11
        assert set(w.ravel()) - {PAD_ID} == set(range(1, 12))
    with pytest.raises(ValueError, match="needs a stride"):
        seqs.train_windows(4, jitter_rng=window_rng(0, 0))


def test_cloze_masks_only_real_positions_and_labels_them():
    rng = np.random.default_rng(0)
    seqs = np.where(
        np.arange(12)[None, :] < rng.integers(0, 13, size=(500, 1)),
        0,
        rng.integers(1, 50, size=(500, 12)),
    ).astype(np.int32)
    seqs[:3] = 0  # some empty sequences
    inputs, labels, weights = cloze_mask(seqs, mask_prob=0.3, mask_id=50, rng=cloze_rng(0, 0))
    real = seqs != PAD_ID
    chosen = weights == 1.0
    assert inputs.dtype == labels.dtype == np.int32 and weights.dtype == np.float32
    assert not np.any(chosen & ~real)  # never a padding position
    np.testing.assert_array_equal(labels, np.where(chosen, seqs, 0))
    np.testing.assert_array_equal(inputs, np.where(chosen, 50, seqs))
    assert np.all(chosen.any(axis=1) == real.any(axis=1))  # >= 1 per non-empty sequence
    assert set(np.unique(weights)) <= {0.0, 1.0}


def test_cloze_mask_rate_is_mask_prob():
    seqs = np.ones((4000, 50), dtype=np.int32)
    _, _, weights = cloze_mask(seqs, mask_prob=0.2, mask_id=2, rng=cloze_rng(1, 0))
    # 200,000 Bernoulli(0.2) draws: std 0.0009, so +-0.005 is more than 5 sigma.
    assert abs(weights.mean() - 0.2) < 0.005


def test_cloze_mask_is_fresh_per_epoch_and_reproducible():
    seqs = np.arange(1, 201, dtype=np.int32).reshape(10, 20)
    a = cloze_mask(seqs, mask_prob=0.2, mask_id=999, rng=cloze_rng(7, 0))
    b = cloze_mask(seqs, mask_prob=0.2, mask_id=999, rng=cloze_rng(7, 0))
    c = cloze_mask(seqs, mask_prob=0.2, mask_id=999, rng=cloze_rng(7, 1))
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[2], c[2])


def test_last_item_rows_are_added_with_only_the_last_item_masked():
    seqs = np.array([[0, 0, 3, 4], [5, 6, 7, 8], [0, 0, 0, 0]], dtype=np.int32)
    inputs, labels, weights = cloze_mask(
        seqs, mask_prob=0.5, mask_id=9, rng=cloze_rng(0, 0), last_item_prob=1.0
    )
    # The 3 sequences keep their random masks; the 2 non-empty ones come back once more.
    assert num_last_item_rows(seqs, 1.0) == 2 and inputs.shape == (5, 4)
    assert weights[:2].sum() >= 2 and weights[2].sum() == 0
    np.testing.assert_array_equal(weights[3:], [[0, 0, 0, 1], [0, 0, 0, 1]])
    np.testing.assert_array_equal(inputs[3:], [[0, 0, 3, 9], [5, 6, 7, 9]])
    np.testing.assert_array_equal(labels[3:], [[0, 0, 0, 4], [0, 0, 0, 8]])
    some = cloze_mask(
        np.ones((4000, 10), np.int32),
        mask_prob=0.5,
        mask_id=2,
        rng=cloze_rng(0, 0),
        last_item_prob=0.25,
    )[2]
    assert some.shape == (5000, 10)
    assert np.all(some[4000:, :-1] == 0) and np.all(some[4000:, -1] == 1)
    # The random masks are not replaced: about half of the 4,000 sequences' positions.
    assert abs(some[:4000].mean() - 0.5) < 0.01


def test_mask_last_item_adds_the_last_item_to_each_row():
    seqs = np.array([[0, 0, 3, 4], [5, 6, 7, 8], [0, 0, 0, 0]], dtype=np.int32)
    plain = cloze_mask(seqs, mask_prob=0.25, mask_id=9, rng=cloze_rng(0, 0))
    inputs, labels, weights = cloze_mask(
        seqs, mask_prob=0.25, mask_id=9, rng=cloze_rng(0, 0), mask_last_item=True
    )
    # No extra rows: the same random masks, plus each non-empty row's last item.
    assert inputs.shape == (3, 4)
    np.testing.assert_array_equal(weights[:, -1], [1, 1, 0])
    np.testing.assert_array_equal(weights[:, :-1], plain[2][:, :-1])
    np.testing.assert_array_equal(inputs[:2, -1], [9, 9])
    np.testing.assert_array_equal(labels[:2, -1], [4, 8])
    assert weights[2].sum() == 0 and np.all(inputs[2] == 0)
    # The last item is the last non-padding position, wherever the padding is.
    ragged = np.array([[1, 2, 0, 0]], dtype=np.int32)
    w = cloze_mask(ragged, mask_prob=0.01, mask_id=9, rng=cloze_rng(1, 0), mask_last_item=True)[2]
    assert w[0, 1] == 1 and w[0, 2:].sum() == 0
    # The cap keeps the last item and a uniform subset of the random masks.
    many = np.arange(1, 20_001, dtype=np.int32).reshape(1000, 20)
    capped = cloze_mask(
        many,
        mask_prob=0.5,
        mask_id=99_999,
        rng=cloze_rng(3, 0),
        max_predictions=4,
        mask_last_item=True,
    )[2]
    assert np.all(capped[:, -1] == 1) and capped.sum(axis=1).max() == 4
    share = capped[:, :-1].sum(axis=0) / capped[:, :-1].sum()
    assert share.max() - share.min() < 0.03, share


def test_max_predictions_keeps_a_uniform_subset_of_the_masks():
    seqs = np.arange(1, 20_001, dtype=np.int32).reshape(1000, 20)
    full = cloze_mask(seqs, mask_prob=0.5, mask_id=99_999, rng=cloze_rng(3, 0))[2]
    capped = cloze_mask(
        seqs, mask_prob=0.5, mask_id=99_999, rng=cloze_rng(3, 0), max_predictions=4
    )[2]
    # The same draw of masks, then at most 4 per sequence, none outside the drawn ones.
    assert capped.sum(axis=1).max() == 4 and np.all(capped <= full)
    np.testing.assert_array_equal(capped.sum(axis=1), np.minimum(full.sum(axis=1), 4))
    # Uniform among the masks: every column keeps the same share of its masks (the earliest
    # positions are not favoured, as a first-M rule would do).
    share = capped.sum(axis=0) / full.sum(axis=0)
    assert share.max() - share.min() < 0.12, share
    with pytest.raises(ValueError, match="max_predictions"):
        cloze_mask(seqs, mask_prob=0.5, mask_id=9, rng=cloze_rng(0, 0), max_predictions=0)


def test_bert_replacement_shares():
    seqs = np.random.default_rng(0).integers(1, 1001, size=(400, 100)).astype(np.int32)
    inputs, labels, weights = cloze_mask(
        seqs, mask_prob=1.0, mask_id=1001, rng=cloze_rng(0, 0), bert_replace=True
    )
    np.testing.assert_array_equal(labels, seqs)  # every position is a target
    assert weights.min() == 1.0
    masked = np.mean(inputs == 1001)
    unchanged = np.mean(inputs == seqs)  # 10%, plus random draws of the true item (0.01%)
    assert abs(masked - 0.8) < 0.01 and abs(unchanged - 0.1) < 0.01
    assert inputs.min() >= 1 and inputs.max() <= 1001


def test_eval_inputs_append_the_mask_token():
    out = eval_inputs([[1, 2, 3, 4, 5, 6], [7], []], max_len=4, mask_id=99)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, [[4, 5, 6, 99], [0, 0, 7, 99], [0, 0, 0, 99]])
    seqs = _seqs([[0, 1, 2, 3, 4, 5], [6]], num_items=10)
    np.testing.assert_array_equal(
        seqs.eval_inputs(np.array([0, 1, -1, 5]), 4),
        [[4, 5, 6, 11], [0, 0, 7, 11], [0, 0, 0, 11], [0, 0, 0, 11]],
    )
    np.testing.assert_array_equal(eval_inputs([[1, 2]], max_len=1, mask_id=5), [[5]])


def test_history_as_of_a_split():
    # User 0: items 0..4 over time; leave-one-out holds out item 4 (test) and item 3 (valid).
    ds = _dataset([0] * 5 + [1] * 3, [0, 1, 2, 3, 4, 5, 6, 7], range(8), 2, 8)
    split = leave_one_out(ds)
    valid_hist = history_as_of(split, "valid")
    test_hist = history_as_of(split, "test")
    assert valid_hist.history(0).tolist() == [1, 2, 3]
    assert test_hist.history(0).tolist() == [1, 2, 3, 4]  # the validation item comes last
    assert test_hist.history(1).tolist() == [6, 7]
    no_valid = leave_one_out(ds, with_valid=False)
    assert history_as_of(no_valid, "test").history(0).tolist() == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="no validation part"):
        history_as_of(no_valid, "valid")
