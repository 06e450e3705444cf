"""Pure per-device train and eval steps, shared by every model family.

A model family supplies `loss_sums(params, batch, rng, train) -> sums`, a dict of float32
scalars over ONE device's shard of the batch with at least "loss" (the sum of weighted
per-example losses) and "count" (the sum of weights). The step differentiates the local loss
sum, adds the gradients and the sums of all devices with `psum`, and divides once by the global
count: the gradient of the weighted mean loss over the global batch, exactly, however the
padding weights fall on the devices (a `pmean` of per-device means would not be).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from shortrec_jax.training.parallel import DATA_AXIS, psum_data

PyTree = Any
LossSums = Callable[[PyTree, PyTree, jax.Array, bool], dict[str, jax.Array]]


class TrainState(struct.PyTreeNode):
    """What a training step carries from one step to the next (all of it is checkpointed).

    `ema_params` is the exponential moving average of the parameters (`train.ema_decay`), or
    None when that is off; `eval_params` are the ones to validate, test and serve.
    """

    step: jax.Array
    params: PyTree
    opt_state: PyTree
    ema_params: PyTree = None

    @classmethod
    def create(
        cls, params: PyTree, tx: optax.GradientTransformation, *, ema: bool = False
    ) -> TrainState:
        """The state before the first step; with `ema`, the average starts at `params`."""
        return cls(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=tx.init(params),
            ema_params=params if ema else None,
        )

    @property
    def eval_params(self) -> PyTree:
        """The averaged parameters when there are some, else the trained ones."""
        return self.params if self.ema_params is None else self.ema_params


def ema_update(ema: PyTree, params: PyTree, step: jax.Array, decay: float) -> PyTree:
    """The bias-corrected exponential moving average after update number `step` (from 1).

    Equal to sum_t decay**(step - t) * params_t / sum_t decay**(step - t) over the parameters
    after updates 1..step: the initial parameters carry no weight, so a short run's average
    is not pulled back to its random start (the weight of the newest is
    (1 - decay) / (1 - decay**step), 1 at the first update).
    """
    weight = (1.0 - decay) / (1.0 - jnp.power(jnp.float32(decay), step.astype(jnp.float32)))
    return jax.tree.map(lambda e, p: e + weight.astype(e.dtype) * (p - e), ema, params)


def make_train_step(
    loss_sums: LossSums, tx: optax.GradientTransformation, ema_decay: float = 0.0
) -> Callable[[TrainState, PyTree, jax.Array], tuple[TrainState, dict[str, jax.Array]]]:
    """Builds the per-device train step `(state, batch_shard, rng) -> (state, sums)`.

    Args:
      loss_sums: the model family's loss over a batch shard (see the module docstring).
      tx: the optimiser.
      ema_decay: the per-step decay of the parameters' moving average (`ema_update`), kept
        in `state.ema_params` when the state has one.

    Returns:
      A pure function to run under `Partitioner.compile_train_step` or `pmap_step`; the
      returned sums are psum-reduced over "data", so the host adds them over steps and
      divides once.
    """

    # The name shows in JAX's compile logs and events ("train_step"), which is how the
    # tests count its compilations.
    def train_step(
        state: TrainState, batch: PyTree, rng: jax.Array
    ) -> tuple[TrainState, dict[str, jax.Array]]:
        # Fresh dropout per step and per device, all descending from the run's seed.
        rng = jax.random.fold_in(rng, state.step)
        rng = jax.random.fold_in(rng, jax.lax.axis_index(DATA_AXIS))

        def local_loss(params: PyTree) -> tuple[jax.Array, dict[str, jax.Array]]:
            sums = loss_sums(params, batch, rng, True)
            return sums["loss"], sums

        grads, sums = jax.grad(local_loss, has_aux=True)(state.params)
        grads, sums = psum_data((grads, sums))
        count = jnp.maximum(sums["count"], 1.0)
        grads = jax.tree.map(lambda g: g / count, grads)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        # The loss above was computed before this update; this count catches an update that
        # itself breaks the parameters, before the state can be checkpointed.
        sums = {**sums, "nonfinite_params": _count_nonfinite(params)}
        step = state.step + 1
        ema_params = state.ema_params
        if ema_params is not None:
            ema_params = ema_update(ema_params, params, step, ema_decay)
        new_state = state.replace(
            step=step, params=params, opt_state=opt_state, ema_params=ema_params
        )
        return new_state, sums

    return train_step


def _count_nonfinite(tree: PyTree) -> jax.Array:
    """The number of NaN or infinite values in a tree of float arrays, as a float32 scalar."""
    counts = [jnp.sum(~jnp.isfinite(x), dtype=jnp.float32) for x in jax.tree.leaves(tree)]
    return sum(counts, jnp.zeros((), jnp.float32))


def make_eval_step(
    predict: Callable[[PyTree, PyTree], tuple[jax.Array, dict[str, jax.Array]]],
) -> Callable[[PyTree, PyTree], tuple[jax.Array, dict[str, jax.Array]]]:
    """Builds the per-device eval step `(params, batch_shard) -> (per_example, sums)`.

    Args:
      predict: `(params, batch_shard) -> (per_example [b, ...], local sums)`.

    Returns:
      A pure function for `Partitioner.compile_eval_step`; sums are psum-reduced over "data".
    """

    def eval_step(params: PyTree, batch: PyTree) -> tuple[jax.Array, dict[str, jax.Array]]:
        per_example, sums = predict(params, batch)
        return per_example, psum_data(sums)

    return eval_step
