"""SASRec: causal attention, padding, next-item targets at every position, the trainer."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import sasrec_ml100k
from shortrec_jax.data.sequences import SequenceData, next_item_targets
from shortrec_jax.models.sasrec import SASRec, SASRecConfig
from shortrec_jax.models.seq_losses import softmax_loss
from shortrec_jax.models.transformer import SequenceTransformer, next_item_scores
from shortrec_jax.training.checkpoint import Checkpointer
from shortrec_jax.training.logger import read_jsonl
from shortrec_jax.training.loop import train_and_evaluate
from shortrec_jax.training.sequence_tasks import NextItemTask
from tests.parallel_steps import single_and_sharded_steps
from tests.small_runs import small_sequence_config, softmax_step
from tests.test_bert4rec import cycle_batch

TINY = SASRecConfig(
    num_items=10, max_len=8, hidden=16, num_layers=2, num_heads=2, inner=32, dropout=0.1
)
PAD = 0


@functools.partial(jax.jit, static_argnames="model")
def init_params(model, key):
    return model.init(key, jnp.zeros((1, model.config.max_len), jnp.int32), train=False)["params"]


@functools.partial(jax.jit, static_argnames="model")
def encode(model, params, ids):
    return model.apply({"params": params}, ids, False, method=SequenceTransformer.encode)


loss_of = jax.jit(softmax_loss, static_argnames=("model", "train", "max_predictions"))
scores_of = jax.jit(next_item_scores, static_argnames="model")


def init(config=TINY, seed=0):
    model = SASRec(config)
    return model, init_params(model, jax.random.key(seed))


INPUTS = np.array([[PAD, PAD, PAD, 3, 4, 5, 6, 7], [1, 2, 3, 4, 5, 6, 7, 8]], np.int32)


def test_changing_a_later_item_never_changes_an_earlier_position():
    model, params = init()
    h = encode(model, params, INPUTS)
    real = INPUTS != PAD
    for t in range(3, 8):
        changed = INPUTS.copy()
        changed[:, t] = 9
        h_changed = encode(model, params, changed)
        # Real positions only: a padding position has no key to attend to and is never read.
        earlier = real & (np.arange(8) < t)
        np.testing.assert_array_equal(h_changed[earlier], h[earlier])
        assert np.abs(h_changed[:, t:] - h[:, t:]).min() > 0  # it and later ones do move


def test_padding_never_changes_real_positions():
    model, params = init()
    h = encode(model, params, INPUTS)
    # Whatever padding embeds to, and however much of it there is, real positions agree.
    moved = jax.tree.map(lambda p: p, params)
    moved["item_embed"]["embedding"] = params["item_embed"]["embedding"].at[PAD].set(5.0)
    np.testing.assert_allclose(encode(model, moved, INPUTS)[0, 3:], h[0, 3:], atol=1e-6)
    np.testing.assert_allclose(encode(model, params, INPUTS[:1, 2:])[0, 1:], h[0, 3:], atol=1e-5)
    assert np.all(np.isfinite(encode(model, params, np.zeros((1, 8), np.int32))))


def test_next_item_targets_score_every_position_that_has_a_next_item():
    windows = np.array([[0, 0, 0, 3, 4, 5, 6, 7, 2], [1, 2, 3, 4, 5, 6, 7, 8, 9]], np.int32)
    inputs, labels, weights = next_item_targets(windows)
    np.testing.assert_array_equal(inputs, windows[:, :-1])
    np.testing.assert_array_equal(labels[0], [0, 0, 0, 4, 5, 6, 7, 2])
    np.testing.assert_array_equal(labels[1], windows[1, 1:])
    np.testing.assert_array_equal(weights, inputs != PAD)

    # The loss counts each scored position once, and a label at an unscored one is ignored.
    model, params = init()
    loss, count = loss_of(model, params, inputs, labels, weights, None, train=False)
    assert count == 5 + 8
    other = labels.copy()
    other[0, :3] = 9
    assert loss_of(model, params, inputs, other, weights, None, train=False)[0] == loss


def test_windows_with_stride_make_every_item_but_the_first_a_target_once():
    history = np.arange(1, 24, dtype=np.int32)  # 23 items
    seqs = SequenceData(30, history, np.array([0, 23]))
    windows = seqs.train_windows(8 + 1, stride=8, min_len=2)
    _, labels, weights = next_item_targets(windows)
    targets = np.sort(labels[weights > 0])
    np.testing.assert_array_equal(targets, history[1:])


def test_next_item_scores_read_the_last_history_item():
    model, params = init()
    mask = TINY.mask_id
    inputs = np.concatenate([INPUTS[:, 1:], np.full((2, 1), mask, np.int32)], axis=1)
    scores = scores_of(model, params, inputs)
    logits = model.apply({"params": params}, INPUTS[:, 1:], False)  # [2, 7, V]
    np.testing.assert_allclose(scores, logits[:, -1, 1:mask], rtol=1e-5, atol=1e-5)


def test_learns_cyclic_sequences():
    num_items, length = 20, 8
    config = SASRecConfig(
        num_items=num_items, max_len=length, hidden=32, num_heads=2, inner=64, dropout=0.1
    )
    model, params = init(config, seed=1)
    tx = optax.adam(5e-3)
    opt_state = tx.init(params)

    step = softmax_step(model, tx)
    rng = np.random.default_rng(0)
    for i in range(300):
        batch = next_item_targets(cycle_batch(rng, 64, num_items, length + 1))
        params, opt_state, _ = step(params, opt_state, *batch, jax.random.key(i))
    ids = cycle_batch(np.random.default_rng(1), 500, num_items, length)
    history = np.concatenate([ids[:, :-1], np.full((500, 1), config.mask_id, np.int32)], axis=1)
    hit_at_1 = np.mean(
        np.asarray(scores_of(model, params, history)).argmax(axis=1) + 1 == ids[:, -1]
    )
    assert hit_at_1 > 0.95, hit_at_1


def small_config():
    config = small_sequence_config(sasrec_ml100k)
    config.data.window_stride = 16
    return config


def test_sasrec_sharded_step_equals_single_device(tmp_path):
    out = single_and_sharded_steps(NextItemTask, small_config(), tmp_path)
    batch = out["batch"]
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
        out["sharded"][0],
        out["single"][0],
    )
    expected = (batch["weights"] * batch["weight"][:, None]).sum()
    assert out["single"][1]["count"] == out["sharded"][1]["count"] == pytest.approx(expected)


def _steps_per_epoch(config) -> int:
    task = NextItemTask(config)
    with tempfile.TemporaryDirectory() as tmp:
        task.prepare(Path(tmp))
    return task.steps_per_epoch(config.train.batch_size)


@pytest.mark.slow
def test_train_sasrec_end_to_end_validating_every_k_steps(tmp_path):
    config = small_config()
    config.train.num_epochs = 3
    config.train.eval_every_steps = 4
    config.train.early_stopping_patience = 0
    results = train_and_evaluate(config, tmp_path)
    assert set(results["test"]) >= {"hr@10", "ndcg@10", "sampled100_pop/hr@10"}
    assert "sampled100_pop/hr@10" not in results["valid"]  # full ranking only in validation
    assert 0.0 <= results["test"]["ndcg@10"] <= results["test"]["hr@10"] <= 1.0
    # Validations every 4 steps and where training ended; checkpoints only for new bests.
    records = [r for r in read_jsonl(tmp_path / "metrics.jsonl") if r["kind"] == "valid"]
    steps, total = [r["step"] for r in records], results["epochs"] * _steps_per_epoch(config)
    assert steps == list(range(4, total + 1, 4)) + ([total] if total % 4 else [])
    best, improved = -1.0, []
    for r in records:
        if r["ndcg@10"] > best:
            best, improved = r["ndcg@10"], [*improved, r["step"]]
    ckpt = Checkpointer(tmp_path, keep=config.checkpoint.keep, best_metric="ndcg@10")
    try:
        assert set(ckpt.all_steps()) <= set(improved)
        assert ckpt.best_step() == improved[-1] == results["best_step"]
    finally:
        ckpt.close()
