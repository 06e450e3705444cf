"""Small training runs for the tests: the run settings every shrunk training config shares, the
shrunk sequence-model configs, untrained sequence runs for the pipeline, and the one-device
Adam step of the sequence models' learning tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import jax
import optax
from ml_collections import ConfigDict

from shortrec_jax.config_files import load_config_file, merge_overrides
from shortrec_jax.data import Dataset
from shortrec_jax.models.seq_losses import softmax_loss
from shortrec_jax.training.run import TrainedRun, untrained_run

#: A one-layer, 16-wide sequence model over windows of 16 (BERT4Rec or SASRec config).
TINY_SEQUENCE = {
    # Stride 8: the BERT4Rec config's window jitter needs a stride below max_len.
    "data": {"max_len": 16, "window_stride": 8},
    "model": {"hidden": 16, "inner": 32, "num_layers": 1},
}


def untrained_sequence_run(config_file: str, data: Dataset, workdir: Path) -> TrainedRun:
    """A TINY_SEQUENCE run of `config_file` over `data`'s items with initial parameters, in
    `workdir`: a recaller's mechanics need no training."""
    config = load_config_file(config_file)
    merge_overrides(config, TINY_SEQUENCE)
    encoders = workdir / "encoders"
    encoders.mkdir(parents=True)
    item_ids = data.item_ids.tolist()
    (encoders / "sequences.json").write_text(
        json.dumps({"num_items": len(item_ids), "item_ids": item_ids})
    )
    return untrained_run(workdir, config)


def quick_run(config: ConfigDict, *, batch_size: int, eval_batch_size: int) -> ConfigDict:
    """Shrinks `config`'s run, in place, to two epochs of small logged steps; returns it."""
    config.train.batch_size = batch_size
    config.train.num_epochs = 2
    config.train.warmup_steps = 2
    config.train.log_every_steps = 2
    # 8 simulated devices share 2 cores: keep one step in flight (see DESIGN.md).
    config.train.max_steps_in_flight = 1
    config.eval.batch_size = eval_batch_size
    config.log.progress_bar = False
    return config


def small_sequence_config(module: ModuleType) -> ConfigDict:
    """A sequence model's config (`module.get_config()`: SASRec, BERT4Rec) on 30% of the data,
    16-item windows and a 16-wide model, run by `quick_run`."""
    config = quick_run(module.get_config(), batch_size=64, eval_batch_size=128)
    config.data.subsample = 0.3
    config.data.max_len = 16
    if config.data.window_jitter:
        config.data.window_stride = 8  # jittered windows need a stride below max_len
    config.model.hidden = 16
    config.model.inner = 32
    return config


def one_layer_bert4rec(config: ConfigDict) -> ConfigDict:
    """Shrinks a small BERT4Rec config, in place, to one epoch of one 8-wide layer on 8-item
    windows; returns it."""
    config.data.max_len = 8
    if config.data.window_jitter:
        config.data.window_stride = 4
    # One Transformer layer: compiling the step for 8 simulated devices is most of the time.
    config.model.num_layers = 1
    config.model.hidden = 8
    config.model.inner = 16
    config.train.num_epochs = 1
    return config


def softmax_step(model: Any, tx: optax.GradientTransformation) -> Callable[..., Any]:
    """A jitted step of `tx` on the full-softmax next-item loss of `model`:
    (params, opt_state, inputs [B, L], labels [B, L], weights [B, L], rng) ->
    (params, opt_state, mean loss)."""

    @jax.jit
    def step(params, opt_state, inputs, labels, weights, rng):
        def loss_fn(p):
            loss, count = softmax_loss(model, p, inputs, labels, weights, rng)
            return loss / count

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step
