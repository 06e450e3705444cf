"""Device placement in one place: the mesh, state and batch shardings, compiled steps, hosts.

The mesh has two axes: "data" (each device group sees its own slice of the batch) and
"model" (devices that share the rows of the large embedding tables). With the default
`model_axis_size=1` the model axis has size 1 and this is plain data parallelism.

Steps are written in the pmap style: a function of one data shard of the batch that combines
gradients and metric sums with collectives over "data". `Partitioner` runs such a function
with `jax.shard_map` inside `jax.jit`, manual over "data" only (`axis_names={"data"}`): inside
the function the batch is the device group's slice, while the "model" axis stays automatic,
so the compiler partitions every operation on a row-sharded table (the gather of a lookup,
the scatter-add of its gradient, the optimiser update, a product with the whole catalogue)
over the devices that hold its rows. No table is ever gathered whole onto one device; the
model code does not know whether its tables are sharded. `pmap_step` runs the same
per-device function under `jax.pmap` (data parallel only), for comparison.

Because the per-device function differentiates its LOCAL loss and then sums gradients with
`psum`, it must run with `check_vma=False`: with the default `check_vma=True`, shard_map
already sums the gradient of a replicated parameter over "data", and a psum on top would count
it N times (see DESIGN.md).

Multi-host: `initialize_distributed` joins the processes before any device is used; the mesh
then spans every device of every process, each process feeds the contiguous rows of every
global batch that its devices hold (`process_rows`), and `to_host` gathers results from all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from shortrec_jax.data.batching import prefetch

DATA_AXIS = "data"
MODEL_AXIS = "model"

PyTree = Any


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> None:
    """Joins this process to a multi-process run; call it before any use of a device.

    Arguments left None are detected by JAX on the clusters it knows (Slurm, Open MPI,
    Cloud TPU, Kubernetes); `coordinator_address` also comes from JAX_COORDINATOR_ADDRESS.

    Args:
      coordinator_address: "host:port" of process 0, where it serves the coordinator.
      num_processes: how many processes take part.
      process_id: this process's index in [0, num_processes).
    """
    # Collectives between processes on the CPU backend (the GPU and TPU backends have their
    # own); set before the backend is created, which is why this precedes any device use.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=coordinator_address,
        num_processes=num_processes,
        process_id=process_id,
    )


def psum_data(tree: PyTree) -> PyTree:
    """`jax.lax.psum` over "data", inside a per-device step (the identity on one data shard).

    On a mesh whose "data" axis has size 1 (every device along "model"), XLA cannot partition
    an all-reduce over that manual axis beside the automatic one (JAX 0.10: "Cross-partition
    allreduce must be in (partial) manual partitioning mode"); a sum over one shard is the
    shard itself, so it is skipped.
    """
    if jax.lax.axis_size(DATA_AXIS) == 1:
        return tree
    return jax.lax.psum(tree, DATA_AXIS)


def path_names(path: tuple[Any, ...]) -> tuple[str, ...]:
    """The key names of a pytree path: dict keys, attribute names and sequence indices, the
    same for a TrainState and for the dicts and lists a checkpoint restores without a target
    ("/".join of them: "opt_state/1/0/count")."""
    names = []
    for entry in path:
        for attr in ("key", "name", "idx"):
            if hasattr(entry, attr):
                names.append(str(getattr(entry, attr)))
                break
        else:
            names.append(str(entry))
    return tuple(names)


class Partitioner:
    """The device mesh of a run and the shardings of its state and batches.

    Args:
      devices: the devices of the mesh (default: every device of every process).
      model_axis_size: devices along "model" that split each sharded table's rows; must
        divide the device count. 1 keeps every parameter whole on every device.
      sharded_tables: parameter paths ("embedding/table") whose leading axis (rows) is split
        over "model"; a path matches every state leaf whose key path ends with it, so the
        optimiser's moments of a table are split like the table. Everything else, and every
        table when `model_axis_size` is 1, is replicated.
    """

    def __init__(
        self,
        devices: Sequence[jax.Device] | None = None,
        *,
        model_axis_size: int = 1,
        sharded_tables: Sequence[str] = (),
    ) -> None:
        devices = list(devices if devices is not None else jax.devices())
        if model_axis_size < 1 or len(devices) % model_axis_size:
            raise ValueError(
                f"parallel.model_axis_size={model_axis_size} must be a positive divisor of the "
                f"device count {len(devices)}"
            )
        # Auto axis types: shard_map gets explicit specs for "data", and jit partitions the
        # rest, the row-sharded tables over "model" included.
        self.mesh = jax.make_mesh(
            (len(devices) // model_axis_size, model_axis_size),
            (DATA_AXIS, MODEL_AXIS),
            axis_types=(AxisType.Auto, AxisType.Auto),
            devices=devices,
        )
        self.sharded_tables = tuple(tuple(p.split("/")) for p in sharded_tables)
        self.replicated = NamedSharding(self.mesh, P())
        self.batch_sharding = NamedSharding(self.mesh, P(DATA_AXIS))
        self.table_sharding = NamedSharding(self.mesh, P(MODEL_AXIS))

    @property
    def num_devices(self) -> int:
        return int(self.mesh.devices.size)

    @property
    def data_size(self) -> int:
        """Data shards of a global batch (the size of the "data" axis)."""
        return int(self.mesh.shape[DATA_AXIS])

    @property
    def model_size(self) -> int:
        """Devices that split each sharded table (the size of the "model" axis)."""
        return int(self.mesh.shape[MODEL_AXIS])

    @property
    def layout(self) -> tuple[Any, ...]:
        """What compiled steps depend on, as a hashable: the mesh's device ids and axis sizes
        and the row-sharded table paths."""
        return (
            tuple(int(d.id) for d in self.mesh.devices.flat),
            tuple(self.mesh.shape.items()),
            self.sharded_tables,
        )

    def _is_table(self, path: tuple[Any, ...]) -> bool:
        names = path_names(path)
        return any(names[-len(t) :] == t for t in self.sharded_tables)

    def shardings(self, tree: PyTree) -> PyTree:
        """The sharding of every leaf of a state (arrays or `jax.ShapeDtypeStruct`s).

        Raises:
          ValueError: a sharded table whose rows do not divide evenly over "model".
        """

        def leaf(path: tuple[Any, ...], x: Any) -> NamedSharding:
            if not self._is_table(path) or not len(np.shape(x)):
                return self.replicated
            rows = x.shape[0]
            if rows % self.model_size:
                name = "/".join(path_names(path))
                raise ValueError(
                    f"{name} has {rows:,} rows, which do not split evenly over "
                    f"parallel.model_axis_size={self.model_size} devices; choose a size that "
                    "divides it"
                )
            return self.table_sharding

        return jax.tree_util.tree_map_with_path(leaf, tree)

    def abstract(self, tree: PyTree) -> PyTree:
        """Shape/dtype structs of `tree` with this mesh's shardings: Orbax restore targets.

        Restoring onto them is how a checkpoint moves to another device count or mesh shape.
        """
        return jax.tree.map(
            lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
            tree,
            self.shardings(tree),
        )

    def init_state(self, init_fn: Callable[[jax.Array], PyTree], rng: jax.Array) -> PyTree:
        """Builds the initial state by compiling `init_fn` with the state's shardings.

        Every device computes only its own part (a sharded table is never whole on one
        device), and every device gets its own buffer, so donating the state in the first
        step cannot delete a shared source (see DESIGN.md).
        """
        out = self.shardings(jax.eval_shape(init_fn, rng))
        return jax.jit(init_fn, out_shardings=out)(rng)

    def compile_train_step(
        self,
        per_device_step: Callable[[PyTree, PyTree, jax.Array], tuple[PyTree, PyTree]],
        state_shardings: PyTree | None = None,
    ) -> Callable[[PyTree, PyTree, jax.Array], tuple[PyTree, PyTree]]:
        """Compiles `per_device_step(state, batch_shard, rng) -> (state, metric_sums)`.

        The state and rng are replicated over "data" (tables stay split over "model"), the
        batch is split over "data"; the returned metric sums must already be reduced with
        `psum`. The state argument is donated.

        Args:
          per_device_step: the pmap-style step (see `steps.make_train_step`).
          state_shardings: `shardings(state)`; pins the new state to the shardings of the
            old one, so that the donated buffers are reused and the next call hits the same
            compiled program. None lets the compiler choose.
        """
        step = jax.shard_map(
            per_device_step,
            mesh=self.mesh,
            in_specs=(P(), P(DATA_AXIS), P()),
            out_specs=(P(), P()),
            axis_names={DATA_AXIS},
            check_vma=False,
        )
        out = None if state_shardings is None else (state_shardings, self.replicated)
        return jax.jit(step, donate_argnums=(0,), out_shardings=out)

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
            axis_names={DATA_AXIS},
            check_vma=False,
        )
        return jax.jit(step)

    def process_rows(self, global_batch_size: int) -> slice:
        """The rows of every global batch that this process feeds to its devices.

        Args:
          global_batch_size: B, a multiple of `data_size`.

        Returns:
          slice(start, stop): a contiguous block (all of [0, B) with one process).
        """
        if global_batch_size % self.data_size:
            raise ValueError(
                f"the global batch size {global_batch_size} must divide evenly over "
                f"{self.data_size} data shards"
            )
        index_map = self.batch_sharding.addressable_devices_indices_map((global_batch_size,))
        blocks = sorted({s[0].indices(global_batch_size)[:2] for s in index_map.values()})
        start, stop = blocks[0][0], blocks[-1][1]
        if sum(b - a for a, b in blocks) != stop - start:
            raise ValueError(
                f"this process's devices hold non-contiguous rows {blocks} of the batch; "
                "order the mesh's devices by process"
            )
        return slice(start, stop)

    def shard_batch(self, local_batch: Mapping[str, np.ndarray]) -> dict[str, jax.Array]:
        """Places this process's rows of a global batch on its devices, split along axis 0.

        Args:
          local_batch: arrays [B_local, ...], the `process_rows` of the global batch;
            B_local must divide evenly over this process's data shards.

        Returns:
          Global arrays [B, ...] sharded over "data" (replicated over "model").
        """
        return {
            k: jax.make_array_from_process_local_data(self.batch_sharding, np.asarray(v))
            for k, v in local_batch.items()
        }

    def prefetch_to_devices(
        self, local_batches: Iterable[Mapping[str, np.ndarray]], size: int = 2
    ) -> Iterator[dict[str, jax.Array]]:
        """`shard_batch` of each batch in a background thread, up to `size` batches ahead.

        Host batch preparation and the host-to-device copy then overlap the running steps,
        so the input pipeline does not hold the devices up.
        """
        return prefetch(map(self.shard_batch, local_batches), size=size)

    def to_host(self, tree: PyTree) -> PyTree:
        """Copies (possibly sharded, possibly multi-process) arrays to host NumPy, whole."""
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            tree = multihost_utils.process_allgather(tree, tiled=True)
        return jax.tree.map(np.asarray, tree)

    def any_process(self, flag: bool) -> bool:
        """Whether `flag` is true in any process (a host collective when there are several).

        Every process must call it at the same point; it is how processes agree to stop at
        the same step when only some of them received a signal.
        """
        if jax.process_count() == 1:
            return flag
        from jax.experimental import multihost_utils

        flags = multihost_utils.process_allgather(np.asarray(flag, np.int32))
        return bool(np.any(flags))


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
