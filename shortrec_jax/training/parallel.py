"""Device placement in one place: the mesh, batch sharding, and compiling per-device steps.

Steps are written in the pmap style: a function of one device's shard of the batch that
combines gradients and metric sums with collectives over the mesh axis "data". `Partitioner`
runs such a function with `jax.shard_map` inside `jax.jit` (what `jax.pmap` is built on in
current JAX); `pmap_step` runs the same function under `jax.pmap`. Because the per-device
function differentiates its LOCAL loss and then sums gradients with `psum`, it must run with
`check_vma=False`: with the default `check_vma=True`, shard_map already sums the gradient of a
replicated parameter over "data", and a psum on top would count it N times (see DESIGN.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"

PyTree = Any


class Partitioner:
    """The device mesh of a run and the shardings of its state and batches.

    One mesh axis, "data", over every device of every process: the state is replicated, each
    batch is split along its first axis.
    """

    def __init__(self, devices: list[jax.Device] | None = None) -> None:
        devices = list(devices if devices is not None else jax.devices())
        # Auto axis types: shard_map gets explicit specs below, and jit propagates the rest.
        self.mesh = jax.make_mesh(
            (len(devices),), (DATA_AXIS,), axis_types=(AxisType.Auto,), devices=devices
        )
        self.replicated = NamedSharding(self.mesh, P())
        self.batch_sharding = NamedSharding(self.mesh, P(DATA_AXIS))

    @property
    def num_devices(self) -> int:
        return int(self.mesh.devices.size)

    @property
    def num_local_devices(self) -> int:
        return sum(d.process_index == jax.process_index() for d in self.mesh.devices.flat)

    def shard_batch(self, local_batch: Mapping[str, np.ndarray]) -> dict[str, jax.Array]:
        """Places this process's part of a global batch on its devices, split along axis 0.

        Args:
          local_batch: arrays [B_local, ...]; B_local must divide evenly over the local devices.

        Returns:
          Global arrays [B_local * num_processes, ...] sharded over "data".
        """
        return {
            k: jax.make_array_from_process_local_data(self.batch_sharding, np.asarray(v))
            for k, v in local_batch.items()
        }

    def init_state(self, init_fn: Callable[[jax.Array], PyTree], rng: jax.Array) -> PyTree:
        """Builds the replicated initial state by compiling `init_fn` with replicated outputs.

        Building it under jit (instead of `device_put` of a host copy) gives every device its
        own buffer, so donating the state in the first step cannot delete a shared source.
        """
        return jax.jit(init_fn, out_shardings=self.replicated)(rng)

    def compile_train_step(
        self, per_device_step: Callable[[PyTree, PyTree, jax.Array], tuple[PyTree, PyTree]]
    ) -> Callable[[PyTree, PyTree, jax.Array], tuple[PyTree, PyTree]]:
        """Compiles `per_device_step(state, batch_shard, rng) -> (state, metric_sums)`.

        The state and rng are replicated, the batch split over "data"; the returned metric
        sums must already be reduced with `psum` (so they are replicated too). The state
        argument is donated.
        """
        step = jax.shard_map(
            per_device_step,
            mesh=self.mesh,
            in_specs=(P(), P(DATA_AXIS), P()),
            out_specs=(P(), P()),
            check_vma=False,
        )
        return jax.jit(step, donate_argnums=(0,))

    def compile_eval_step(
        self, per_device_eval: Callable[[PyTree, PyTree], tuple[PyTree, PyTree]]
    ) -> Callable[[PyTree, PyTree], tuple[PyTree, PyTree]]:
        """Compiles `per_device_eval(params, batch_shard) -> (per_example, metric_sums)`.

        `per_example` stays split over "data" (e.g. predictions [B]); `metric_sums` must be
        reduced with `psum` inside.
        """
        step = jax.shard_map(
            per_device_eval,
            mesh=self.mesh,
            in_specs=(P(), P(DATA_AXIS)),
            out_specs=(P(DATA_AXIS), P()),
            check_vma=False,
        )
        return jax.jit(step)

    def to_host(self, tree: PyTree) -> PyTree:
        """Copies (possibly sharded) arrays to host NumPy."""
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            tree = multihost_utils.process_allgather(tree, tiled=True)
        return jax.tree.map(np.asarray, tree)


def pmap_step(
    per_device_step: Callable[[PyTree, PyTree, jax.Array], tuple[PyTree, PyTree]],
    devices: list[jax.Device] | None = None,
) -> Callable[[PyTree, PyTree, jax.Array], tuple[PyTree, PyTree]]:
    """Runs the same per-device step with `jax.pmap`, for comparison or older stacks.

    Returns a function of (state, global batch [B, ...], rng) that replicates the state, splits
    the batch into [num_devices, B / num_devices, ...], and returns device 0's state and metric
    sums, so its results compare one to one with `Partitioner.compile_train_step`.
    """
    devices = list(devices if devices is not None else jax.local_devices())
    n = len(devices)
    mapped = jax.pmap(per_device_step, axis_name=DATA_AXIS, in_axes=(0, 0, None), devices=devices)

    def run(state: PyTree, batch: PyTree, rng: jax.Array) -> tuple[PyTree, PyTree]:
        stacked = jax.tree.map(lambda x: jnp.broadcast_to(x, (n, *jnp.shape(x))), state)
        split = jax.tree.map(lambda x: x.reshape(n, x.shape[0] // n, *x.shape[1:]), batch)
        new_state, sums = mapped(stacked, split, rng)
        return jax.tree.map(lambda x: x[0], (new_state, sums))

    return run
