"""BERT4Rec through the trainer: evaluation arrays, the parallel step, an end-to-end run."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from configs import bert4rec_ml100k
from shortrec_jax.data.build import build_dataset
from shortrec_jax.data.splits import leave_one_out
from shortrec_jax.training.checkpoint import Checkpointer, abstract_like
from shortrec_jax.training.config_checks import ConfigError, validate_config
from shortrec_jax.training.logger import read_jsonl
from shortrec_jax.training.loop import train_and_evaluate
from shortrec_jax.training.optim import make_optimizer
from shortrec_jax.training.parallel import Partitioner, pmap_step
from shortrec_jax.training.run import load_run
from shortrec_jax.training.sequence_tasks import ClozeTask, sample_negatives
from shortrec_jax.training.steps import TrainState
from tests.parallel_steps import single_and_sharded_steps
from tests.small_runs import small_sequence_config


def small_config():
    config = small_sequence_config(bert4rec_ml100k)
    config.train.max_predictions = 8
    return config


def _tiny_split():
    # User a: items 1, 2, 3, 4, 5 in time order; user b: 3, 1, 3 (a repeat as its test item).
    users = ["a"] * 5 + ["b"] * 3
    items = ["1", "2", "3", "4", "5", "3", "1", "3"]
    times = [1, 2, 3, 4, 5, 1, 2, 3]
    ds = build_dataset(
        "tiny",
        np.array(users),
        np.array(items),
        np.ones(8),
        np.array(times),
        source="test",
        duplicates="keep",
    )
    return ds, leave_one_out(ds)


def test_eval_arrays_append_the_mask_and_exclude_only_earlier_items(tmp_path):
    ds, split = _tiny_split()
    config = small_config()
    config.data.max_len = 4
    config.eval.sampled_negatives = 0  # five items: too few to sample from
    task = ClozeTask(config, split)
    task.prepare(tmp_path)
    mask = ds.num_items + 1
    idx = {raw: ds.item_index(raw) + 1 for raw in ("1", "2", "3", "4", "5")}
    test = task.eval["test"]
    # User a's test history is 1, 2, 3, 4 (train + valid), cut to the last L - 1 = 3 items.
    np.testing.assert_array_equal(test["inputs"][0], [idx["2"], idx["3"], idx["4"], mask])
    assert test["target"][0] == ds.item_index("5")
    # Seen items are index lists padded per batch with num_items, to the longest history of
    # any part (never a [users, items] mask).
    seen = next(task.eval_batches("test", 2, 1))["seen"]
    n = ds.num_items
    np.testing.assert_array_equal(seen[0], [ds.item_index(r) for r in ("1", "2", "3", "4")])
    # User b's test item 3 was seen before; it stays rankable, item 1 does not.
    assert test["target"][1] == ds.item_index("3")
    np.testing.assert_array_equal(seen[1], [ds.item_index("1"), n, n, n])
    # Training sequences hold the training part only (a: 1, 2, 3; b: 3).
    assert task.windows.shape == (1, 4)  # b has one training item: below min_len 2
    np.testing.assert_array_equal(task.windows[0], [0, idx["1"], idx["2"], idx["3"]])


def test_rank_of_the_target_counts_allowed_items_above_it(tmp_path):
    _, split = _tiny_split()
    config = small_config()
    config.eval.sampled_negatives = 0
    task = ClozeTask(config, split)
    task.prepare(tmp_path)
    params = task.init_params(jax.random.key(0))
    batch = {k: v[:1] for k, v in next(task.eval_batches("test", 2, 1)).items()}
    ranks, _ = task.predict(params, batch)
    from shortrec_jax.models.transformer import next_item_scores

    scores = np.asarray(next_item_scores(task.model, params, batch["inputs"]))[0]
    allowed = ~np.isin(np.arange(scores.size), batch["seen"][0])
    expected = np.sum((scores > scores[batch["target"][0]]) & allowed)
    assert int(ranks[0, 0]) == expected


def test_bert4rec_sharded_step_equals_single_device_and_pmap(tmp_path):
    out = single_and_sharded_steps(ClozeTask, small_config(), tmp_path)
    batch = out["batch"]
    params, tx, per_device, rng = out["initial"]
    state, sums = pmap_step(per_device)(TrainState.create(params, tx), batch, rng)
    out["pmap"] = (jax.device_get(state.params), jax.device_get(sums))
    for name in ("sharded", "pmap"):
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
            out[name][0],
            out["single"][0],
        )
        assert out[name][1]["count"] == out["single"][1]["count"]
    # Padding rows contribute no masked positions.
    expected = (batch["weights"] * batch["weight"][:, None]).sum()
    assert out["single"][1]["count"] == pytest.approx(expected)


def test_train_bert4rec_end_to_end_on_8_devices_and_restore(tmp_path):
    config = small_config()
    config.train.ema_decay = 0.9
    results = train_and_evaluate(config, tmp_path)
    assert set(results["test"]) >= {"hr@10", "ndcg@10", "mrr@10", "sampled100_pop/hr@10"}
    # 100 sampled negatives are an easier ranking than the whole catalogue.
    assert results["test"]["sampled100_pop/hr@10"] >= results["test"]["hr@10"]
    assert 0.0 <= results["test"]["ndcg@10"] <= results["test"]["hr@10"] <= 1.0
    run = load_run(tmp_path)
    assert run.vocabulary.num_items == 1682
    assert run.step == results["best_step"]
    # The moving average is what was validated during training, re-validated at the end and
    # loaded for scoring; the trained parameters differ from it.
    logged = [r for r in read_jsonl(tmp_path / "metrics.jsonl") if r["kind"] == "valid"]
    at_best = next(r for r in logged if r["step"] == run.step)
    assert at_best["ndcg@10"] == pytest.approx(results["valid"]["ndcg@10"], abs=1e-6)
    tx = make_optimizer(config.train, total_steps=1)
    abstract = abstract_like(
        jax.eval_shape(lambda: TrainState.create(run.params, tx, ema=True)),
        Partitioner(jax.devices()[:1]).replicated,
    )
    ckpt = Checkpointer(tmp_path, keep=2, best_metric="ndcg@10", best_mode="max")
    try:
        state, _ = ckpt.restore(run.step, abstract)
    finally:
        ckpt.close()
    table = ("item_embed", "embedding")
    loaded = np.asarray(run.params[table[0]][table[1]])
    np.testing.assert_array_equal(loaded, state.ema_params[table[0]][table[1]])
    assert not np.allclose(loaded, state.params[table[0]][table[1]])


def _epoch_windows(task: ClozeTask, epoch: int) -> list[tuple[int, ...]]:
    """An epoch's training windows with their masked items put back, sorted."""
    windows = []
    for batch in task.train_batches(epoch, 64, 1):
        real = batch["weight"] > 0
        labels = batch["labels"][real]
        assert (labels[:, -1] > 0).all()  # mask_last_item: every row's last item is a target
        windows += map(tuple, np.where(labels > 0, labels, batch["inputs"][real]).tolist())
    return sorted(windows)


@pytest.mark.parametrize("jitter", [False, True])
def test_window_jitter_draws_each_epochs_windows(tmp_path, jitter):
    config = small_config()
    config.data.window_jitter = jitter
    task = ClozeTask(config)
    task.prepare(tmp_path)
    windows = [_epoch_windows(task, epoch) for epoch in range(2)]
    assert len(windows[0]) == len(windows[1]) == task.windows.shape[0]
    assert (windows[0] != windows[1]) == jitter
    if not jitter:
        assert windows[0] == sorted(map(tuple, task.windows.tolist()))


def test_window_jitter_is_refused_where_it_would_move_nothing():
    config = small_config()  # max_len 16, stride 8
    validate_config(config)
    config.data.window_stride = 16
    with pytest.raises(ConfigError, match=r"^config data.window_jitter=True moves no window"):
        validate_config(config)
    config.data.window_jitter = False
    validate_config(config)


def test_sampled_negatives_exclude_seen_and_target_and_follow_popularity():
    rng = np.random.default_rng(0)
    n, items = 400, 12
    # The most popular item is always seen: CSR lists of one item per user.
    seen = (np.zeros(n, np.int32), np.arange(n + 1))
    targets = np.full(n, 1)
    popularity = np.array([100.0, 50, 40, 1, 1, 1, 1, 1, 1, 1, 1, 0])
    neg = sample_negatives(seen, targets, popularity, 3, rng, max_entries=64 * items)
    assert neg.shape == (n, 3)
    assert not np.isin(neg, [0, 1, 11]).any()  # seen, target, never-trained item
    assert all(len(set(row)) == 3 for row in neg.tolist())  # without replacement
    # Item 2 (weight 40 of 48 left) is nearly always among 3 draws; a weight-1 item rarely.
    assert (neg == 2).any(axis=1).mean() > 0.95
    assert (neg == 3).any(axis=1).mean() < 0.6
    with pytest.raises(ValueError, match="sampled_negatives=20"):
        sample_negatives(seen, targets, popularity, 20, rng)
