"""Scale: tables sharded over a "model" mesh axis, several processes, one compile per shape.

Every test runs on the 8 simulated CPU devices of conftest.py; the two-process test starts
real processes that talk over 127.0.0.1 with CPU collectives.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from shortrec_jax.data.batching import batches
from shortrec_jax.data.splits import leave_one_out, random_split
from shortrec_jax.data.synthetic import synthetic_log
from shortrec_jax.training.checkpoint import Checkpointer
from shortrec_jax.training.ctr_task import CTRTask
from shortrec_jax.training.logger import read_jsonl
from shortrec_jax.training.loop import train_and_evaluate
from shortrec_jax.training.optim import make_optimizer
from shortrec_jax.training.parallel import Partitioner
from shortrec_jax.training.run import load_run
from shortrec_jax.training.sequence_tasks import ClozeTask
from shortrec_jax.training.steps import TrainState, make_eval_step, make_train_step
from tests.test_train_bert4rec import small_config as bert4rec_small_config
from tests.test_train_ctr import ROOT, latest_params, run_train
from tests.test_train_ctr import small_config as ctr_small_config

# (data, model) meshes of the 8 devices; (1, 8) puts every device on "model".
MESHES = ((4, 2), (2, 4), (1, 8))


def _ctr_task(tmp_path: Path) -> CTRTask:
    config = ctr_small_config()
    config.model.dropout = 0.0  # dropout masks differ per device by design
    config.train.warmup_steps = 0  # the first step of a warm-up has learning rate 0
    config.parallel.model_axis_size = 8  # rows padded to a multiple of 8: every mesh fits
    task = CTRTask(config)
    task.prepare(tmp_path)
    return task


def _cloze_task(tmp_path: Path) -> ClozeTask:
    config = bert4rec_small_config()
    config.model.dropout = 0.0
    config.model.attention_dropout = 0.0
    config.model.num_layers = 1  # the tables are what is tested; one layer compiles faster
    config.train.warmup_steps = 0
    config.eval.sampled_negatives = 10
    # 406 items: the item table and output bias have 408 rows, a multiple of 2, 4 and 8.
    split = leave_one_out(synthetic_log(num_users=200, num_items=406, num_interactions=5000))
    task = ClozeTask(config, split)
    task.prepare(tmp_path)
    return task


def _one_step(task, part: Partitioner, batch, rng):
    """One train step from the task's initial parameters; (state, metric sums)."""
    tx = make_optimizer(task.config.train, 10)

    def init(key: jax.Array) -> TrainState:
        return TrainState.create(task.init_params(key), tx)

    state = part.init_state(init, rng)
    shardings = part.shardings(state)
    step = part.compile_train_step(make_train_step(task.loss_sums, tx), shardings)
    state, sums = step(state, part.shard_batch(batch), rng)
    jax.block_until_ready(state)  # one step at a time on 2 cores (see DESIGN.md)
    return state, sums


def _assert_tables_sharded(state, tables: tuple[str, ...], model: int) -> None:
    """Each table and its Adam moments are split by rows over "model", the rest replicated."""
    leaves = jax.tree_util.tree_leaves_with_path(state)
    seen = 0
    for path, leaf in leaves:
        name = "/".join(str(getattr(k, "key", getattr(k, "name", ""))) for k in path)
        if any(name.endswith(t) for t in tables):
            seen += 1
            assert leaf.sharding.spec == P("model"), name
            (shard,) = {s.data.shape for s in leaf.addressable_shards}
            assert shard[0] == leaf.shape[0] // model, name
        else:
            assert leaf.sharding.is_fully_replicated, name
    # The parameter and the two moments of Adam, per table.
    assert seen == 3 * len(tables)


@pytest.mark.parametrize("family", ["xdeepfm", "bert4rec"])
def test_sharded_tables_step_equals_single_device_step(tmp_path, family):
    task = _ctr_task(tmp_path) if family == "xdeepfm" else _cloze_task(tmp_path)
    rng = jax.random.key(0)
    batch = next(task.train_batches(0, 64, 8))
    batch["weight"][-5:] = 0.0  # uneven padding across the data shards
    single_part = Partitioner(jax.devices()[:1])
    single, single_sums = jax.device_get(_one_step(task, single_part, batch, rng))
    eval_batch = None
    if family == "bert4rec":
        eval_batch = {k: v[:16] for k, v in next(task.eval_batches("test", 16, 1)).items()}
        eval_step = single_part.compile_eval_step(make_eval_step(task.predict))
        single_ranks, _ = eval_step(single.params, single_part.shard_batch(eval_batch))
    for data, model in MESHES:
        part = Partitioner(model_axis_size=model, sharded_tables=task.sharded_tables)
        assert part.mesh.shape == {"data": data, "model": model}
        state, sums = _one_step(task, part, batch, rng)
        _assert_tables_sharded(state, task.sharded_tables, model)
        assert float(sums["count"]) == pytest.approx(float(single_sums["count"]))
        np.testing.assert_allclose(float(sums["loss"]), float(single_sums["loss"]), rtol=1e-5)
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6),
            jax.device_get(state.params),
            single.params,
        )
        if eval_batch is not None:
            # Full-ranking scores with the catalogue split over "model": the same ranks.
            eval_step = part.compile_eval_step(make_eval_step(task.predict))
            ranks, _ = eval_step(state.params, part.shard_batch(eval_batch))
            np.testing.assert_array_equal(np.asarray(ranks), np.asarray(single_ranks))
    # The step moved every table.
    for table in ("embedding", "linear") if family == "xdeepfm" else ("item_embed",):
        before = task.init_params(rng)[table]
        moved = jax.tree.map(lambda a, b: float(np.abs(a - b).max()), single.params[table], before)
        assert min(jax.tree.leaves(moved)) > 0, table


def test_checkpoint_of_sharded_tables_restores_onto_one_device(tmp_path):
    task = _ctr_task(tmp_path / "data")
    part = Partitioner(model_axis_size=2, sharded_tables=task.sharded_tables)
    state, _ = _one_step(task, part, next(task.train_batches(0, 64, 4)), jax.random.key(0))
    ckpt = Checkpointer(tmp_path / "run", keep=1)
    ckpt.save(1, state, {"epoch": 1}, metrics={"auc": 0.5})
    ckpt.close()
    one = Partitioner(jax.devices()[:1])
    restored, meta = Checkpointer(tmp_path / "run", keep=1).restore(
        1, one.abstract(jax.eval_shape(lambda: state))
    )
    assert meta == {"epoch": 1}
    for leaf in jax.tree.leaves(restored):
        assert leaf.sharding.device_set == {jax.devices()[0]}
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(restored), jax.device_get(state))


def test_rows_that_do_not_split_evenly_are_refused():
    part = Partitioner(model_axis_size=4, sharded_tables=("item_embed/embedding",))
    tree = {"item_embed": {"embedding": jax.ShapeDtypeStruct((1001, 8), np.float32)}}
    with pytest.raises(ValueError, match=r"item_embed/embedding has 1,001 rows"):
        part.shardings(tree)
    with pytest.raises(ValueError, match="model_axis_size=3"):
        Partitioner(model_axis_size=3)


@pytest.mark.parametrize("shuffle", [True, False])
def test_process_parts_of_global_batches_add_up_to_the_global_batches(shuffle):
    arrays = {"x": np.arange(10) * 10, "weight": np.linspace(0.5, 1.0, 10)}
    whole = list(batches(arrays, 4, shuffle=shuffle, seed=0, epoch=1))
    parts = [
        list(batches(arrays, 4, shuffle=shuffle, seed=0, epoch=1, process_rows=rows))
        for rows in (slice(0, 2), slice(2, 4))
    ]
    assert len(whole) == len(parts[0]) == len(parts[1]) == 3  # 4 + 4 + 2 and 2 padding rows
    for batch, first, second in zip(whole, *parts, strict=True):
        for key in batch:
            np.testing.assert_array_equal(np.concatenate([first[key], second[key]]), batch[key])
    assert whole[-1]["weight"][2:].tolist() == [0.0, 0.0]
    assert Partitioner().process_rows(16) == slice(0, 16)  # one process holds every row
    with pytest.raises(ValueError, match="process_rows"):
        batches(arrays, 4, shuffle=False, process_rows=slice(2, 6))


def test_one_compilation_per_step_across_epochs_padded_batches_and_parts(tmp_path):
    """A 2 x 4 mesh with sharded tables, 2 epochs whose last batch is padded, validation
    after each epoch and the best checkpoint on valid and test: one compile per step, and
    none for the checkpoints' checksums."""
    config = ctr_small_config()
    config.train.batch_size = 384  # a shape no other test compiles
    config.eval.batch_size = 768
    config.parallel.model_axis_size = 4
    compiles: list[str] = []

    def listen(event: str, duration: float, *, fun_name: str = "", **_: object) -> None:
        del duration
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(fun_name)

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        results = train_and_evaluate(config, tmp_path)
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    train_rows = 8_000  # 80% of a 10% subsample of 100,000 ratings
    assert train_rows % config.train.batch_size  # the last batch of each epoch is padded
    assert compiles.count("jit(train_step)") == 1, compiles
    assert compiles.count("jit(eval_step)") == 1, compiles
    # Checksums and the finite check of saves and restores are summed in host memory here.
    assert not {"jit(_fingerprints)", "jit(_all_finite)"} & set(compiles), compiles
    assert results["epochs"] == 2 and results["test"]["auc"] > 0.6
    # The run restores onto one device: the tables gather back whole.
    run = load_run(tmp_path)
    table = run.params["embedding"]["table"]
    assert table.shape[0] % 4 == 0 and table.sharding.device_set == {jax.devices()[0]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_like_one_process_with_the_same_global_batch(tmp_path):
    """Two processes of one CPU device each (gloo over 127.0.0.1) against one process of two
    devices: the same global batches, data shards and dropout streams, so the same model."""
    coordinator = f"--coordinator_address=127.0.0.1:{_free_port()}"
    pair = [
        run_train(tmp_path / "two", [coordinator, "--num_processes=2", f"--process_id={i}"])
        for i in (0, 1)
    ]
    single = run_train(tmp_path / "one", [], devices=2)
    outputs = []
    try:
        for proc in (*pair, single):
            out, _ = proc.communicate(timeout=240)
            outputs.append(out)
    finally:
        for proc in (*pair, single):
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    for proc, out in zip((*pair, single), outputs, strict=True):
        assert proc.returncode == 0, out[-3000:]
    step_two, params_two = latest_params(tmp_path / "two")
    step_one, params_one = latest_params(tmp_path / "one")
    assert step_two == step_one == 32  # 2 epochs of 16 global batches
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
        params_two,
        params_one,
    )
    two = json.loads((tmp_path / "two" / "results.json").read_text())
    one = json.loads((tmp_path / "one" / "results.json").read_text())
    assert two["test"]["auc"] == pytest.approx(one["test"]["auc"], abs=1e-5)
    # Only process 0 logged: every training window once, the printed metrics once.
    steps = [
        r["step"] for r in read_jsonl(tmp_path / "two" / "metrics.jsonl") if r["kind"] == "train"
    ]
    assert steps == sorted(set(steps)) and steps[-1] == 32
    assert "valid:" in outputs[0] and "valid:" not in outputs[1]


def test_multi_process_flags_are_checked():
    out = subprocess.run(
        [sys.executable, "train.py", "--num_processes=2", "--process_id=0"],
        cwd=ROOT,
        env={**os.environ, "XLA_FLAGS": "", "JAX_PLATFORMS": "cpu"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0 and "--coordinator_address" in out.stderr


def test_item_dense_fields_from_the_config_reach_the_model(tmp_path):
    ds = synthetic_log(num_users=50, num_items=40, num_interactions=800)
    vectors = np.random.default_rng(0).normal(size=(ds.num_items, 6)).astype(np.float32)
    ds = dataclasses.replace(ds, item_vectors=vectors)
    config = ctr_small_config()
    assert tuple(config.data.item_dense) == ()  # the default run has no content vectors
    config.data.item_dense = ("item_vectors",)
    task = CTRTask(config, random_split(ds, (0.8, 0.1, 0.1), seed=0))
    task.prepare(tmp_path)
    assert task.model.config.spec.dense_dims == (6,)
    params = task.init_params(jax.random.key(0))
    assert params["embedding"]["dense_0"]["kernel"].shape == (6, config.model.embed_dim)
    batch = next(task.train_batches(0, 64, 8))
    assert batch["dense"].shape == (64, 6) and np.abs(batch["dense"]).sum() > 0
