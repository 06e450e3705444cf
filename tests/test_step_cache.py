"""Compiled steps shared by the runs of one process (training/step_cache.py): a second run of
an equal model on another split compiles nothing and trains exactly as a fresh one."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from configs import xdeepfm_ml100k
from shortrec_jax.data import load
from shortrec_jax.data.splits import random_split, subsample
from shortrec_jax.training import step_cache
from shortrec_jax.training.run import train_run
from shortrec_jax.training.scorers import CTRScorer

COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


def test_shared_returns_the_first_build_per_key_and_forgets_the_oldest(monkeypatch):
    monkeypatch.setattr(step_cache, "MAX_ENTRIES", 2)
    step_cache.clear()
    builds = []

    def build(name):
        builds.append(name)
        return object()

    first = step_cache.shared("a", lambda: build("a"))
    assert step_cache.shared("a", lambda: build("a again")) is first
    assert step_cache.shared(None, lambda: build("none")) is not step_cache.shared(
        None, lambda: build("none")
    )
    step_cache.shared("b", lambda: build("b"))
    step_cache.shared("c", lambda: build("c"))  # "a" is the least recently used: dropped
    assert step_cache.shared("a", lambda: build("a rebuilt")) is not first
    assert builds == ["a", "none", "none", "b", "c", "a rebuilt"]
    step_cache.clear()


def _config(seed: int):
    config = xdeepfm_ml100k.get_config()
    config.seed = seed
    config.model.embed_dim = 4
    config.model.cin_layers = (8, 8)
    config.model.mlp_layers = (16,)
    config.train.batch_size = 256
    config.train.num_epochs = 1
    config.train.warmup_steps = 2
    config.train.max_steps_in_flight = 1
    config.eval.batch_size = 512
    config.log.progress_bar = False
    # Vocabularies of the two training parts differ (checked below): one padded table shape.
    config.parallel.table_rows_multiple = 256
    return config


@pytest.fixture(scope="module")
def parts():
    data = subsample(load("ml-100k"), 0.05, seed=0)
    return [random_split(data, (0.8, 0.2), seed=s).train for s in (0, 1)]


def test_a_second_run_of_an_equal_model_compiles_nothing_and_matches_a_fresh_run(tmp_path, parts):
    compiles: list[str] = []

    def listen(event: str, duration: float, *, fun_name: str = "", **_: object) -> None:
        del duration
        if event == COMPILE_EVENT:
            compiles.append(fun_name)

    pairs = (np.arange(64) % parts[1].num_users, np.arange(64) % parts[1].num_items)
    step_cache.clear()
    # Nothing shared yet: this run compiles its steps.
    fresh, _ = train_run(_config(1), tmp_path / "fresh", parts[1])
    fresh_scores = CTRScorer(fresh, 64).score_pairs(*pairs, parts[1])
    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        # Another split (another vocabulary size), then the first split again: both reuse them.
        other, _ = train_run(_config(0), tmp_path / "other", parts[0])
        CTRScorer(other, 64).score_pairs(*pairs, parts[1])
        shared, _ = train_run(_config(1), tmp_path / "shared", parts[1])
        shared_scores = CTRScorer(shared, 64).score_pairs(*pairs, parts[1])
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
        step_cache.clear()
    assert other.encoder.spec.vocab_size != fresh.encoder.spec.vocab_size
    steps = [f for f in compiles if f in ("jit(init_fn)", "jit(train_step)", "jit(eval_step)")]
    assert steps == [] and "jit(<lambda>)" not in compiles, compiles
    assert jax.tree.all(
        jax.tree.map(lambda a, b: bool(np.array_equal(a, b)), shared.params, fresh.params)
    )
    np.testing.assert_array_equal(shared_scores, fresh_scores)
