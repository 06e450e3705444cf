"""The deep models behind the `Method` interface, built by the registry as evaluate.py does."""

from __future__ import annotations

import tempfile

import numpy as np
import pytest

from shortrec_jax.data import load
from shortrec_jax.data.splits import leave_one_out, random_split, subsample
from shortrec_jax.evaluation.deep import CTRMethod, SequenceMethod
from shortrec_jax.evaluation.registry import make_method

TINY_CTR = {
    "model": {"embed_dim": 4, "cin_layers": (8, 8), "mlp_layers": (16,)},
    "train": {"batch_size": 512, "num_epochs": 2, "warmup_steps": 2, "max_steps_in_flight": 1},
}
TINY_B4R = {
    "data": {"max_len": 16, "window_stride": 8},
    "model": {"hidden": 16, "inner": 32},
    "train": {"batch_size": 64, "num_epochs": 2, "max_predictions": 8, "max_steps_in_flight": 1},
    "eval": {"sampled_negatives": 0},
}


@pytest.fixture(scope="module")
def small_data():
    return subsample(load("ml-100k"), 0.2, seed=0)


def test_registry_builds_baselines_with_the_repeat_seed_and_rejects_unknown_fields():
    method = make_method("random", {}, seed=7)
    assert method.seed == 7
    assert make_method("item-cf", {"k": 5, "like_threshold": None}, seed=0).k == 5
    with pytest.raises(ValueError, match="unknown fields"):
        make_method("item-cf", {"neighbours": 5}, seed=0)
    with pytest.raises(ValueError, match="unknown method"):
        make_method("gru4rec", {}, seed=0)
    with pytest.raises(ValueError, match=r"model\.embed"):
        make_method(
            "xdeepfm",
            {"train_config": "configs/xdeepfm_ml100k.py", "overrides": {"model": {"embed": 3}}},
            seed=0,
        )


def test_ctr_method_trains_on_the_given_split_and_scores_any_pairs(tmp_path, small_data):
    split = random_split(small_data, (0.8, 0.2), seed=0)
    config = {"train_config": "configs/xdeepfm_ml100k.py", "overrides": TINY_CTR}
    method = make_method("xdeepfm", config, seed=3, workdir=tmp_path)
    assert isinstance(method, CTRMethod) and method.config.seed == 3
    method.fit(split.train)
    users = np.unique(split.test.users)[:5]
    items = np.array([[0, 1, 2], [3, 4, -1], [5, 6, 7], [8, 9, 10], [11, 12, 13]])
    scores = method.score(users, items)
    assert scores.shape == (5, 3) and scores.dtype == np.float32
    assert np.all((scores > 0) & (scores < 1))
    full = method.score_all(users)
    assert full.shape == (5, small_data.num_items)
    np.testing.assert_allclose(full[0, :3], scores[0], rtol=1e-6)
    # A padded candidate matrix (rows filled with one repeated item): each distinct pair
    # reaches the model once, and every copy gets the score the pair gets alone.
    scored = []
    score_pairs = method.scorer.score_pairs
    method.scorer.score_pairs = lambda u, i, side: scored.append(u.size) or score_pairs(u, i, side)
    padded = np.array([[0, 1, 2, 0, 0], [3, 4, -1, 3, 3], [5, 5, 5, 5, 5]])
    padded_scores = method.score(users[:3], padded)
    assert scored == [7]
    for r in range(3):
        for c in range(5):
            alone = full[r, padded[r, c]] if padded[r, c] >= 0 else scores[1, 2]
            np.testing.assert_allclose(padded_scores[r, c], alone, rtol=1e-6)
    method.scorer.score_pairs = score_pairs
    top = method.recommend(users, 10, exclude=split.train)
    seen = {
        (u, i) for u, i in zip(split.train.users.tolist(), split.train.items.tolist(), strict=True)
    }
    assert not any((u, i) in seen for u, row in zip(users, top, strict=True) for i in row)
    again = CTRMethod.from_run(tmp_path, split.train)
    np.testing.assert_array_equal(again.score(users, items), scores)


def test_bert4rec_method_scores_from_everything_fit_saw(tmp_path, small_data):
    split = leave_one_out(small_data)
    config = {"train_config": "configs/bert4rec_ml100k.py", "overrides": TINY_B4R}
    method = make_method("bert4rec", config, seed=0, workdir=tmp_path)
    assert isinstance(method, SequenceMethod)
    method.fit(split.train, split.valid)
    users = np.unique(split.test.users)[:7]
    scores = method.score_all(users)
    assert scores.shape == (7, small_data.num_items) and np.all(np.isfinite(scores))
    # The history includes the validation item: it is the last real id before the mask.
    last_valid = {
        u: i for u, i in zip(split.valid.users.tolist(), split.valid.items.tolist(), strict=True)
    }
    inputs = method.history.eval_inputs(users, 16)
    for u, row in zip(users.tolist(), inputs, strict=True):
        if u in last_valid:
            assert row[-2] == last_valid[u] + 1


def test_a_run_without_a_workdir_leaves_no_folder_behind(tmp_path, monkeypatch, small_data):
    # Temporary folders go under tmp_path, so what is left there is what fit left behind.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    split = random_split(small_data, (0.8, 0.2), seed=0)
    overrides = {**TINY_CTR, "train": {**TINY_CTR["train"], "num_epochs": 1}}
    config = {"train_config": "configs/xdeepfm_ml100k.py", "overrides": overrides}
    method = make_method("xdeepfm", config, seed=0)
    method.fit(split.train)
    assert list(tmp_path.iterdir()) == []
    scores = method.score(np.unique(split.test.users)[:2], np.array([[0, 1], [2, 3]]))
    assert np.all((scores > 0) & (scores < 1))
