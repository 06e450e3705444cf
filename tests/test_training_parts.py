"""The trainer's parts on their own: the parallel step, the optimiser, logging, checkpoints."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from ml_collections import ConfigDict

from shortrec_jax.metrics import auc, logloss, rank_metrics_from_ranks
from shortrec_jax.training.checkpoint import Checkpointer, abstract_like
from shortrec_jax.training.logger import MetricLogger, crc32c, read_jsonl
from shortrec_jax.training.optim import learning_rate_schedule, make_optimizer
from shortrec_jax.training.parallel import Partitioner, pmap_step
from shortrec_jax.training.steps import TrainState, make_train_step


def _train_config(**overrides) -> ConfigDict:
    cfg = ConfigDict(
        dict(
            optimizer="adam",
            learning_rate=0.1,
            schedule="constant",
            warmup_steps=0,
            final_lr_fraction=0.0,
            clip_norm=0.0,
            l2=0.0,
            weight_decay=0.0,
            b1=0.9,
            b2=0.999,
            eps=1e-8,
        )
    )
    cfg.update(overrides)
    return cfg


def _linear_loss_sums(params, batch, rng, train):
    """Weighted squared error of a linear model: sums over the shard, as tasks return them."""
    del rng, train
    pred = batch["x"] @ params["w"] + params["b"]  # [b]
    err = (pred - batch["y"]) ** 2
    return {"loss": jnp.sum(batch["weight"] * err), "count": jnp.sum(batch["weight"])}


def _batch(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    weight = np.ones(n, np.float32)
    weight[-3:] = 0.0  # padding rows land on the last device only
    return {
        "x": rng.normal(size=(n, 4)).astype(np.float32),
        "y": rng.normal(size=n).astype(np.float32),
        "weight": weight,
    }


def test_sharded_pmap_and_single_device_steps_agree_on_8_devices():
    assert jax.device_count() == 8
    tx = make_optimizer(_train_config(), total_steps=10)
    params = {"w": jnp.arange(4, dtype=jnp.float32) / 4, "b": jnp.zeros((), jnp.float32)}
    batch = _batch(32)
    rng = jax.random.key(0)
    per_device = make_train_step(_linear_loss_sums, tx)

    single = Partitioner(jax.devices()[:1])
    sharded = Partitioner()
    results = {}
    for name, part in (("single", single), ("sharded", sharded)):
        state = part.init_state(lambda _: TrainState.create(params, tx), rng)
        step = part.compile_train_step(per_device)
        state, sums = step(state, part.shard_batch(batch), rng)
        results[name] = (jax.device_get(state.params), jax.device_get(sums))
    state, sums = pmap_step(per_device)(TrainState.create(params, tx), batch, rng)
    results["pmap"] = (jax.device_get(state.params), jax.device_get(sums))

    # The exact gradient of the weighted mean loss, by hand, then one Adam step of size lr:
    # Adam's first update is lr * g / (|g| + eps) = lr * sign(g).
    x, y, w = batch["x"], batch["y"], batch["weight"]
    err = x @ np.asarray(params["w"]) - y
    grad_w = 2 * (w * err) @ x / w.sum()
    expected_w = np.asarray(params["w"]) - 0.1 * np.sign(grad_w)
    for name, (p, s) in results.items():
        np.testing.assert_allclose(p["w"], expected_w, rtol=1e-5, err_msg=name)
        assert s["count"] == pytest.approx(29.0), name
    for name in ("sharded", "pmap"):
        for key in ("w", "b"):
            np.testing.assert_allclose(results[name][0][key], results["single"][0][key], 1e-6)
        np.testing.assert_allclose(results[name][1]["loss"], results["single"][1]["loss"], 1e-5)


def test_parameter_average_is_off_by_default():
    from shortrec_jax.configs import common

    train = common.train(
        batch_size=8,
        num_epochs=1,
        optimizer="adam",
        learning_rate=0.1,
        warmup_steps=0,
        weight_decay=0.0,
        clip_norm=0.0,
        b2=0.999,
        early_stopping_patience=0,
        log_every_steps=1,
    )
    assert train.ema_decay == 0.0
    tx = make_optimizer(_train_config(), total_steps=10)
    params = {"w": jnp.arange(4, dtype=jnp.float32) / 4, "b": jnp.zeros((), jnp.float32)}
    state = TrainState.create(params, tx)
    part = Partitioner(jax.devices()[:1])
    step = part.compile_train_step(make_train_step(_linear_loss_sums, tx))
    state = part.init_state(lambda _: state, jax.random.key(0))
    state, _ = step(state, part.shard_batch(_batch(8)), jax.random.key(0))
    # No average is kept, and validation reads the trained parameters.
    assert state.ema_params is None
    assert state.eval_params is state.params


def test_parameter_average_after_two_steps_by_hand():
    decay = 0.9
    tx = make_optimizer(_train_config(), total_steps=10)
    params = {"w": jnp.arange(4, dtype=jnp.float32) / 4, "b": jnp.zeros((), jnp.float32)}
    part = Partitioner()
    rng = jax.random.key(0)
    runs = {}
    for ema_decay in (0.0, decay):
        start = TrainState.create(params, tx, ema=ema_decay > 0)
        state = part.init_state(lambda _, start=start: start, rng)
        step = part.compile_train_step(make_train_step(_linear_loss_sums, tx, ema_decay))
        trained, averaged = [], []
        for seed in (0, 1):
            state, _ = step(state, part.shard_batch(_batch(32, seed)), rng)
            trained.append(jax.device_get(state.params))
            averaged.append(jax.device_get(state.eval_params))
        runs[ema_decay] = trained, averaged
    trained, averaged = runs[decay]
    for key in ("w", "b"):
        # The average does not change training.
        np.testing.assert_array_equal(trained[1][key], runs[0.0][0][1][key])
        # Bias-corrected: the first average is the first update's parameters (the initial
        # ones carry no weight), the second is (d * p1 + p2) / (1 + d).
        np.testing.assert_allclose(averaged[0][key], trained[0][key], rtol=1e-6)
        expected = (decay * trained[0][key] + trained[1][key]) / (1 + decay)
        np.testing.assert_allclose(averaged[1][key], expected, rtol=1e-5, atol=1e-7)
        assert not np.allclose(averaged[1][key], trained[1][key])


def test_batch_must_divide_over_local_devices():
    part = Partitioner()
    with pytest.raises(ValueError):
        part.shard_batch({"x": np.zeros((12, 2), np.float32)})


def test_schedule_warmup_then_cosine():
    cfg = _train_config(learning_rate=1.0, schedule="cosine", warmup_steps=10)
    sched = learning_rate_schedule(cfg, total_steps=110)
    assert float(sched(0)) == 0.0
    assert float(sched(5)) == pytest.approx(0.5)
    assert float(sched(10)) == pytest.approx(1.0)
    assert float(sched(60)) == pytest.approx(0.5, abs=1e-6)  # half-way through the cosine
    assert float(sched(110)) == pytest.approx(0.0, abs=1e-6)


def test_optimizer_rejects_impossible_settings():
    with pytest.raises(ValueError, match=r"train\.optimizer"):
        make_optimizer(_train_config(optimizer="sgdx"), 10)
    with pytest.raises(ValueError, match="weight_decay"):
        make_optimizer(_train_config(weight_decay=0.1), 10)
    with pytest.raises(ValueError, match=r"train\.schedule"):
        make_optimizer(_train_config(schedule="step"), 10)


def test_l2_adds_the_gradient_of_half_the_squared_norm():
    tx = make_optimizer(_train_config(l2=0.5, optimizer="adam"), 10)
    params = {"w": jnp.array([2.0, -4.0])}
    # A zero data gradient: the update direction is -sign(l2 * w) with Adam's first step.
    updates, _ = tx.update({"w": jnp.zeros(2)}, tx.init(params), params)
    np.testing.assert_allclose(updates["w"], [-0.1, 0.1], rtol=1e-5)


def test_crc32c_test_vector():
    assert crc32c(b"123456789") == 0xE3069283


def test_logger_writes_jsonl_and_tensorboard_events(tmp_path):
    logger = MetricLogger(tmp_path)
    logger.write(1, "train", {"loss": 0.5, "examples_per_second": 100.0})
    logger.write(2, "valid", {"auc": 0.75, "note": "text values stay out of TensorBoard"})
    logger.close()
    records = read_jsonl(tmp_path / "metrics.jsonl")
    assert [r["kind"] for r in records] == ["train", "valid"]
    assert records[1]["auc"] == 0.75

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    assert set(acc.Tags()["scalars"]) == {"train/loss", "train/examples_per_second", "valid/auc"}
    (event,) = acc.Scalars("valid/auc")
    assert event.step == 2 and event.value == pytest.approx(0.75)


def test_checkpoint_save_restore_keeps_latest_and_best(tmp_path):
    tx = optax.adam(1e-3)
    part = Partitioner()
    state = part.init_state(
        lambda _: TrainState.create({"w": jnp.ones((3,), jnp.float32)}, tx), jax.random.key(0)
    )
    ckpt = Checkpointer(tmp_path, keep=1, best_metric="auc", best_mode="max")
    for step, value in ((1, 0.7), (2, 0.9), (3, 0.8), (4, 0.6)):
        state = state.replace(
            step=jnp.asarray(step, jnp.int32), params={"w": state.params["w"] + 1}
        )
        ckpt.save(step, state, {"epoch": step}, metrics={"auc": value})
    ckpt.wait()
    assert ckpt.all_steps() == [2, 4]  # the best (0.9) and the latest
    assert ckpt.best_step() == 2
    abstract = abstract_like(jax.eval_shape(lambda: state), part.replicated)
    restored, meta = ckpt.restore(2, abstract)
    assert meta == {"epoch": 2}
    assert int(restored.step) == 2
    np.testing.assert_array_equal(restored.params["w"], np.full(3, 3.0))
    assert restored.params["w"].sharding.is_equivalent_to(part.replicated, 1)
    ckpt.close()


def test_checkpoint_restores_onto_another_device_count(tmp_path):
    tx = optax.adam(1e-3)
    eight = Partitioner()
    state = eight.init_state(
        lambda _: TrainState.create({"w": jnp.arange(4.0)}, tx), jax.random.key(0)
    )
    ckpt = Checkpointer(tmp_path, keep=1)
    ckpt.save(5, state, {"epoch": 1}, metrics={"auc": 0.5})
    ckpt.close()
    one = Partitioner(jax.devices()[:1])
    restored, _ = Checkpointer(tmp_path, keep=1).restore(
        5, abstract_like(jax.eval_shape(lambda: state), one.replicated)
    )
    assert restored.params["w"].sharding.device_set == {jax.devices()[0]}
    np.testing.assert_array_equal(restored.params["w"], np.arange(4.0))


def test_auc_and_logloss_by_hand():
    labels = np.array([1, 0, 1, 0])
    scores = np.array([0.9, 0.9, 0.4, 0.1])
    # Pairs (pos, neg): (0.9, 0.9) tie = 0.5, (0.9, 0.1) = 1, (0.4, 0.9) = 0, (0.4, 0.1) = 1.
    assert auc(labels, scores) == pytest.approx(2.5 / 4)
    assert np.isnan(auc(np.ones(3), np.arange(3.0)))
    probs = np.array([0.8, 0.4])
    expected = -(np.log(0.8) + np.log(0.6)) / 2
    assert logloss(np.array([1, 0]), probs) == pytest.approx(expected)


def test_rank_metrics_by_hand():
    # Ranks 0, 2, 11: HR@10 = 2/3; NDCG@10 = (1 + 1/log2(4)) / 3; MRR@10 = (1 + 1/3) / 3.
    m = rank_metrics_from_ranks(np.array([0, 2, 11]), (10,))
    assert m["hr@10"] == pytest.approx(2 / 3)
    assert m["ndcg@10"] == pytest.approx((1 + 0.5) / 3)
    assert m["mrr@10"] == pytest.approx((1 + 1 / 3) / 3)
