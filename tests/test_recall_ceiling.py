"""The signals of benchmarks/recall_ceiling.py, by hand on tiny logs."""

from __future__ import annotations

import dataclasses

import numpy as np

from benchmarks.recall_ceiling import group_popularity, session_cooccurrence, validation_ndcg
from shortrec_jax.data.build import build_dataset


def _log(users, items, timestamps=None):
    return build_dataset(
        "tiny",
        np.array(users),
        np.array(items),
        np.ones(len(users), np.float32),
        None if timestamps is None else np.array(timestamps, np.int64),
        source="test",
        user_ids=np.array(sorted(set(users))),
        item_ids=np.array(["0", "1", "2"]),
    )


def test_session_cooccurrence_by_hand():
    # a rates 0, 1, 2 in that order; b rates 0 then 2. Neighbours one position apart:
    # (0, 1), (1, 2) from a and (0, 2) from b; counts 2, 1, 2, so the cosine-normalised
    # similarities are S01 = S12 = 1 / sqrt(2) and S02 = 1 / 2.
    data = _log(["a", "a", "a", "b", "b"], ["0", "1", "2", "0", "2"], [1, 2, 3, 1, 2])
    r = 1 / np.sqrt(2)
    np.testing.assert_allclose(
        session_cooccurrence(data, window=1, decay=1.0),
        [[r + 0.5, 2 * r, 0.5 + r], [0.5, 2 * r, 0.5]],
        rtol=1e-6,
    )
    # Two positions apart adds a's (0, 2) at weight decay = 0.5: S02 = 1.5 / 2.
    two = session_cooccurrence(data, window=2, decay=0.5)
    np.testing.assert_allclose(two[1], [0.75, 2 * r, 0.75], rtol=1e-6)


def test_group_popularity_leaves_the_user_out():
    data = _log(["a", "b", "b", "c"], ["0", "0", "1", "1"])
    # a and b: aged 20 and 22, male (one group); c: 40, female (alone).
    data = dataclasses.replace(
        data,
        user_features={"age": np.array(["20", "22", "40"]), "gender": np.array(["M", "M", "F"])},
    )
    np.testing.assert_allclose(group_popularity(data)[:, :2], [[1.0, 1.0], [1.0, 0.0], [0.0, 0.0]])


def test_validation_ndcg_excludes_training_items():
    train = _log(["a", "b"], ["0", "1"])
    valid = _log(["a", "b"], ["1", "2"])
    # a: item 0 (trained) is dropped, so item 1 is first -> 1; b: item 1 (trained, scored
    # highest) is dropped, item 0 comes first and item 2 second -> 1 / log2(3).
    scores = np.array([[9.0, 5.0, 1.0], [7.0, 9.0, 5.0]])
    expected = (1.0 + 1.0 / np.log2(3.0)) / 2.0
    assert abs(validation_ndcg(scores, train, valid) - expected) < 1e-9
