"""`train_and_evaluate(config, workdir)`: the training loop shared by every model family.

Model families (CTR models, BERT4Rec) differ in data, loss and validation metrics; they plug
in as a `Task` (see `tasks.py`). Everything else is here, once: devices, the jit-compiled
steps, the epoch loop with validation and early stopping, checkpoints and resume, logging.

The same loop runs in every process of a multi-host run (`train.py` calls
`parallel.initialize_distributed` first): every process draws the same global batches and
feeds its own rows of each, saves checkpoints collectively, and only process 0 writes the
config, encoders, logs and results.

Speed: host batches are prepared and copied to the devices in a background thread ahead of
the steps; the host waits for the devices only once per logging window (and when more than
`train.max_steps_in_flight` steps are queued); every batch of a run has one shape, so each
step compiles once.
"""

from __future__ import annotations

import collections
import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import jax
import numpy as np
from ml_collections import ConfigDict

from shortrec_jax.data.splits import Split
from shortrec_jax.io import write_json_atomic
from shortrec_jax.training.checkpoint import Checkpointer, config_to_json
from shortrec_jax.training.guards import (
    RunDirectoryError,
    RunLock,
    StopSignals,
    TrainingInterrupted,
    check_writable,
)
from shortrec_jax.training.logger import MetricLogger
from shortrec_jax.training.optim import make_optimizer
from shortrec_jax.training.parallel import Partitioner
from shortrec_jax.training.steps import TrainState, make_eval_step, make_train_step
from shortrec_jax.training.tasks import make_task

PyTree = Any


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. the loss is no longer finite); the message says where."""


class Task(Protocol):
    """What a model family provides to the loop. Batches are host NumPy dicts of fixed shape."""

    #: the validation metric that picks the best checkpoint and drives early stopping.
    best_metric: str
    #: "max" or "min".
    best_mode: str
    #: parameter paths split by rows over the "model" mesh axis (see `Partitioner`).
    sharded_tables: tuple[str, ...]

    @property
    def parts(self) -> tuple[str, ...]:
        """The data parts prepared: "train", "valid" and, when there is one, "test"."""

    def prepare(self, workdir: Path) -> None:
        """Loads and splits the data, fits (or restores from `workdir`) and saves encoders."""

    def restore(self, workdir: Path) -> None:
        """Rebuilds encoders and model of a finished run in `workdir`, without data."""

    def init_params(self, rng: jax.Array) -> PyTree:
        """Initial model parameters."""

    def loss_sums(
        self, params: PyTree, batch: PyTree, rng: jax.Array, train: bool
    ) -> dict[str, jax.Array]:
        """Loss sum and weight count (and other sums) over one device's batch shard."""

    def steps_per_epoch(self, batch_size: int) -> int:
        """Training steps in one epoch at this global batch size."""

    def train_batches(
        self, epoch: int, batch_size: int, num_shards: int, process_rows: slice | None = None
    ) -> Iterator[dict[str, np.ndarray]]:
        """Global batches of `batch_size` for `epoch` (shuffled from the seed and epoch), cut
        to this process's `process_rows`."""

    def predict(self, params: PyTree, batch: PyTree) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Per-example outputs [b, ...] and metric sums over one device's batch shard."""

    def eval_batches(
        self, part: str, batch_size: int, num_shards: int, process_rows: slice | None = None
    ) -> Iterator[dict[str, np.ndarray]]:
        """Global batches of the "valid" or "test" part, padded with weight 0, cut to this
        process's `process_rows`."""

    def eval_metrics(
        self, part: str, per_example: np.ndarray, sums: dict[str, float]
    ) -> dict[str, float]:
        """Final metrics of a part from all its per-example outputs (padding removed)."""


def _host_sums(tree: PyTree) -> dict[str, float]:
    return {k: float(v) for k, v in jax.device_get(tree).items()}


def _add(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {k: a.get(k, 0.0) + v for k, v in b.items()}


def evaluate_part(
    task: Task,
    eval_step: Any,
    partitioner: Partitioner,
    params: PyTree,
    part: str,
    batch_size: int,
    max_in_flight: int = 4,
) -> dict[str, float]:
    """Runs the eval step over a whole part and returns its metrics.

    Outputs stay on the devices until the part is done, then come to the host in one
    transfer (one gather across processes), so the host does not wait on every batch.

    Args:
      task: the model family.
      eval_step: `Partitioner.compile_eval_step` of the task's predict.
      partitioner: the run's devices.
      params: the parameters to evaluate.
      part: "valid" or "test".
      batch_size: the global eval batch size, a multiple of `partitioner.data_size`.
      max_in_flight: eval steps queued before the host waits for the oldest (see DESIGN.md).
    """
    rows = partitioner.process_rows(batch_size)
    outputs, weights, sums = [], [], []
    host_batches = task.eval_batches(part, batch_size, partitioner.data_size, rows)
    with partitioner.prefetch_to_devices(host_batches) as device_batches:
        for batch in device_batches:
            per_example, batch_sums = eval_step(params, batch)
            outputs.append(per_example)
            weights.append(batch["weight"])
            sums.append(batch_sums)
            if len(outputs) > max_in_flight:
                jax.block_until_ready(outputs[-max_in_flight - 1])
    outputs, weights, sums = partitioner.to_host((outputs, weights, sums))
    per_example = np.concatenate(outputs)[np.concatenate(weights) > 0]
    total: dict[str, float] = {}
    for batch_sums in sums:
        total = _add(total, {k: float(v) for k, v in batch_sums.items()})
    return task.eval_metrics(part, per_example, total)


def _check_finite(history: list[tuple[int, dict[str, float]]], from_step: int) -> None:
    for step, sums in history:
        if not np.isfinite(sums["loss"]):
            raise TrainingError(
                f"the training loss is {sums['loss']} at step {step} (first non-finite value "
                f"between steps {from_step} and {step}); the last good checkpoint is kept. "
                "Lower train.learning_rate or set train.clip_norm."
            )
        if sums.get("nonfinite_params", 0.0) > 0:
            raise TrainingError(
                f"{sums['nonfinite_params']:.0f} parameters are not finite after the update of "
                f"step {step} (first non-finite update between steps {from_step} and {step}); "
                "the last good checkpoint is kept. Lower train.learning_rate, set "
                "train.clip_norm, or check train.eps."
            )


# Fields that may change when a run is resumed; any other difference means another experiment.
RESUMABLE_CHANGES = (
    "train.num_epochs",
    "train.early_stopping_patience",
    "train.log_every_steps",
    "train.max_steps_in_flight",
    "train.prefetch",
    "eval",
    "checkpoint.async_save",
    "log",
    # A checkpoint restores onto any mesh. (xDeepFM's tables are padded to a multiple of
    # the model axis size: a change of that padding fails the restore, naming the shapes.)
    "parallel",
)


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _check_config_matches(config: ConfigDict, workdir: Path) -> None:
    """Refuses to resume a run directory with a config of another experiment."""
    path = workdir / "config.json"
    if not path.exists():
        return
    old = _flatten(json.loads(path.read_text()))
    new = _flatten(config_to_json(config))
    changed = sorted(
        k
        for k in old.keys() | new.keys()
        if old.get(k) != new.get(k)
        and not any(k == f or k.startswith(f + ".") for f in RESUMABLE_CHANGES)
    )
    if changed:
        shown = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed[:5])
        raise ValueError(
            f"{workdir} holds a run with another config ({shown}); use a new --workdir "
            "or the same config to resume"
        )


def _improved(value: float, best: float | None, mode: str) -> bool:
    if best is None:
        return True
    return value > best if mode == "max" else value < best


def train_and_evaluate(
    config: ConfigDict, workdir: str | Path, *, split: Split | None = None
) -> dict[str, Any]:
    """Trains the configured model, validating every epoch, and evaluates the best checkpoint.

    Resumes from the latest checkpoint in `workdir` when there is one.

    Args:
      config: a config from `configs/` (see `configs/xdeepfm_ml100k.py` for the fields).
      workdir: the run directory (created if needed).
      split: train on these parts instead of loading and splitting `config.data` (how
        evaluate.py trains on each repeat's split); it needs a validation part.

    Returns:
      {"valid": best validation metrics, "test": test metrics of the best checkpoint (absent
       without a test part), "best_step", "best_epoch" (counted from 1, as logged), "epochs",
       "train_seconds"}; also written to `<workdir>/results.json`.
    """
    workdir = Path(workdir)
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunDirectoryError(f"cannot create the run directory {workdir}: {e}") from None
    lock = RunLock(workdir) if jax.process_index() == 0 else contextlib.nullcontext()
    with lock, StopSignals() as stop:
        return _train_and_evaluate(config, workdir, split, stop)


def _train_and_evaluate(
    config: ConfigDict, workdir: Path, split: Split | None, stop: StopSignals
) -> dict[str, Any]:
    _check_config_matches(config, workdir)
    task = make_task(config, split)
    partitioner = Partitioner(
        model_axis_size=config.parallel.model_axis_size, sharded_tables=task.sharded_tables
    )
    train_cfg = config.train
    for key, size in (
        ("train.batch_size", train_cfg.batch_size),
        ("eval.batch_size", config.eval.batch_size),
    ):
        if size % partitioner.data_size:
            raise ValueError(
                f"{key}={size} must divide evenly over {partitioner.data_size} data shards "
                f"({partitioner.num_devices} devices / parallel.model_axis_size="
                f"{partitioner.model_size})"
            )
    task.prepare(workdir)
    if jax.process_index() == 0:
        write_json_atomic(workdir / "config.json", config_to_json(config))

    steps_per_epoch = task.steps_per_epoch(train_cfg.batch_size)
    total_steps = steps_per_epoch * train_cfg.num_epochs
    tx = make_optimizer(train_cfg, total_steps)
    rng = jax.random.key(config.seed)
    init_rng, train_rng = jax.random.split(rng)

    def init_fn(key: jax.Array) -> TrainState:
        return TrainState.create(task.init_params(key), tx)

    ckpt = Checkpointer(
        workdir,
        keep=config.checkpoint.keep,
        best_metric=task.best_metric,
        best_mode=task.best_mode,
        async_save=config.checkpoint.async_save,
    )
    abstract_state = partitioner.abstract(jax.eval_shape(init_fn, init_rng))
    state_shardings = jax.tree.map(lambda x: x.sharding, abstract_state)
    state_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(abstract_state))
    # The kept checkpoints, the best one and one being written, plus metadata.
    check_writable(workdir, state_bytes * (config.checkpoint.keep + 2) + 16 * 2**20)
    meta: dict[str, Any] = {"epoch": 0, "best": None, "best_epoch": None, "bad_epochs": 0}
    latest = ckpt.latest_step()
    if latest is not None:
        state, meta = ckpt.restore(latest, abstract_state)
    else:
        state = partitioner.init_state(init_fn, init_rng)
    start_step = int(jax.device_get(state.step))

    train_step = partitioner.compile_train_step(
        make_train_step(task.loss_sums, tx), state_shardings
    )
    eval_step = partitioner.compile_eval_step(make_eval_step(task.predict))
    logger = MetricLogger(workdir, tensorboard=config.log.tensorboard)

    def evaluate(params: PyTree, part: str) -> dict[str, float]:
        return evaluate_part(
            task,
            eval_step,
            partitioner,
            params,
            part,
            config.eval.batch_size,
            train_cfg.max_steps_in_flight,
        )

    patience = train_cfg.early_stopping_patience
    started = time.time()
    try:
        epoch, skip = divmod(start_step, steps_per_epoch)
        while epoch < train_cfg.num_epochs and not (patience and meta["bad_epochs"] >= patience):
            state = _train_epoch(
                config,
                task,
                partitioner,
                train_step,
                train_rng,
                state,
                ckpt,
                logger,
                meta,
                stop,
                epoch=epoch,
                skip=skip,
                steps_per_epoch=steps_per_epoch,
            )
            skip = 0
            step = int(jax.device_get(state.step))
            valid = evaluate(state.params, "valid")
            value = valid[task.best_metric]
            if _improved(value, meta["best"], task.best_mode):
                meta.update(best=value, best_epoch=epoch + 1, bad_epochs=0)
            else:
                meta["bad_epochs"] += 1
            meta["epoch"] = epoch + 1
            logger.write(step, "valid", {"epoch": epoch + 1, **valid})
            _print_metrics(f"epoch {epoch + 1}/{train_cfg.num_epochs} valid", valid)
            ckpt.save(step, state, dict(meta), metrics=valid)
            epoch += 1
        ckpt.wait()
        train_seconds = time.time() - started
        best_step = ckpt.best_step()
        if best_step is None:
            raise TrainingError("no checkpoint with validation metrics was saved")
        best_state, best_meta = ckpt.restore(best_step, abstract_state)
        valid = evaluate(best_state.params, "valid")
        test = None
        if "test" in task.parts:
            test = evaluate(best_state.params, "test")
            logger.write(best_step, "test", test)
            _print_metrics(f"best checkpoint (step {best_step}) test", test)
    finally:
        ckpt.close()
        logger.close()
    results = {
        "valid": valid,
        **({"test": test} if test is not None else {}),
        "best_step": best_step,
        "best_epoch": best_meta["best_epoch"],
        "epochs": meta["epoch"],
        "train_seconds": train_seconds,
    }
    if jax.process_index() == 0:
        write_json_atomic(workdir / "results.json", results)
    return results


def _save_and_stop(
    ckpt: Checkpointer, state: TrainState, meta: dict[str, Any], step: int, signal_name: str | None
) -> None:
    """Saves the state reached and stops the run (SIGINT/SIGTERM)."""
    if step not in ckpt.all_steps():
        ckpt.save(step, state, {**meta, "mid_epoch": True})
    ckpt.wait()
    raise TrainingInterrupted(
        f"stopped by {signal_name} at step {step}, checkpoint saved; run the same command to "
        "resume",
        signal_name or "SIGTERM",
    )


def _progress(config: ConfigDict, epoch: int, total: int, done: int) -> Any:
    if not config.log.progress_bar or jax.process_index() != 0:
        return None
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=done,
        desc=f"epoch {epoch + 1}/{config.train.num_epochs}",
        unit="step",
        leave=False,
        dynamic_ncols=True,
    )


def _print_metrics(title: str, metrics: dict[str, float]) -> None:
    if jax.process_index() == 0:
        text = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float))
        print(f"{title}: {text}", flush=True)


def _train_epoch(
    config: ConfigDict,
    task: Task,
    partitioner: Partitioner,
    train_step: Any,
    train_rng: jax.Array,
    state: TrainState,
    ckpt: Checkpointer,
    logger: MetricLogger,
    meta: dict[str, Any],
    stop: StopSignals,
    *,
    epoch: int,
    skip: int,
    steps_per_epoch: int,
) -> TrainState:
    """One epoch, or its remainder after `skip` steps when resuming from a mid-epoch save.

    Batches and dropout depend only on (seed, epoch, step), so skipping the first `skip`
    batches of the epoch continues exactly where the interrupted run was.
    """
    train_cfg = config.train
    step = epoch * steps_per_epoch + skip
    end_of_epoch = (epoch + 1) * steps_per_epoch
    batch_size = train_cfg.batch_size
    batches = task.train_batches(
        epoch, batch_size, partitioner.data_size, partitioner.process_rows(batch_size)
    )
    for _ in range(skip):
        next(batches)
    # A save is collective: with several processes, all must stop at the same step, so they
    # agree on it once per logging window instead of each reacting to its own signal.
    several = jax.process_count() > 1
    # Bound the steps in flight: many queued steps with collectives can stall on small hosts.
    in_flight: collections.deque[Any] = collections.deque()
    pending: list[tuple[int, Any]] = []
    window_start, window_time = step, time.time()
    progress = _progress(config, epoch, steps_per_epoch, skip)
    with partitioner.prefetch_to_devices(batches, size=train_cfg.prefetch) as device_batches:
        for batch in device_batches:
            state, sums = train_step(state, batch, train_rng)
            step += 1
            pending.append((step, sums))
            if not several and stop.requested:
                # Never save a state the pending steps have not been checked for.
                _check_finite([(s, _host_sums(x)) for s, x in pending], window_start + 1)
                _save_and_stop(ckpt, state, meta, step, stop.received)
            in_flight.append(sums)
            if len(in_flight) > train_cfg.max_steps_in_flight:
                jax.block_until_ready(in_flight.popleft())
            if len(pending) < train_cfg.log_every_steps and step < end_of_epoch:
                continue
            # The only host synchronisation of the loop: once per logging window.
            history = [(s, _host_sums(x)) for s, x in pending]
            _check_finite(history, window_start + 1)
            window: dict[str, float] = {}
            for _, h in history:
                window = _add(window, h)
            elapsed = max(time.time() - window_time, 1e-9)
            metrics = {
                "loss": window["loss"] / max(window["count"], 1.0),
                "examples_per_second": window["count"] / elapsed,
                "epoch": step / steps_per_epoch,
            }
            logger.write(step, "train", metrics)
            if progress is not None:
                progress.update(len(pending))
                progress.set_postfix(
                    loss=f"{metrics['loss']:.4f}", ex_s=f"{metrics['examples_per_second']:,.0f}"
                )
            if several and partitioner.any_process(stop.requested):
                _save_and_stop(ckpt, state, meta, step, stop.received)
            every = config.checkpoint.every_steps
            if every and step // every > window_start // every and step < end_of_epoch:
                ckpt.save(step, state, {**meta, "mid_epoch": True})
            pending, in_flight = [], collections.deque()
            window_start, window_time = step, time.time()
    if progress is not None:
        progress.close()
    return state
