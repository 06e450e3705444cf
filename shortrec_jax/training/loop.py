"""`train_and_evaluate(config, workdir)`: the training loop shared by every model family.

Model families (CTR models, BERT4Rec) differ in data, loss and validation metrics; they plug
in as a `Task` (see `contract.py`, `tasks.py`). Everything else is done once, in this
package: the run directory and the loop over epochs (here), one epoch's steps (`epoch.py`),
validation (`validation.py`), checkpoints and resume (`resume.py`).

The same loop runs in every process of a multi-host run (`train.py` calls
`parallel.initialize_distributed` first): every process draws the same global batches and
feeds its own rows of each, saves checkpoints collectively, and only process 0 writes the
config, encoders, logs and results.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import optax
from ml_collections import ConfigDict

from shortrec_jax.data.splits import Split
from shortrec_jax.io import write_json_atomic
from shortrec_jax.training import step_cache
from shortrec_jax.training.checkpoint import Checkpointer, config_to_json
from shortrec_jax.training.config_checks import validate_config
from shortrec_jax.training.contract import Session, Task
from shortrec_jax.training.epoch import TrainingError, train_epoch
from shortrec_jax.training.guards import (
    RunDirectoryError,
    RunLock,
    StartUndo,
    StopSignals,
    check_writable,
)
from shortrec_jax.training.logger import MetricLogger
from shortrec_jax.training.optim import make_optimizer
from shortrec_jax.training.parallel import Partitioner
from shortrec_jax.training.resume import check_config_matches, restore_or_init
from shortrec_jax.training.steps import TrainState, make_eval_step, make_train_step
from shortrec_jax.training.tasks import make_task
from shortrec_jax.training.validation import (
    evaluate,
    patience_spent,
    print_metrics,
    validate_and_save,
    validate_now,
)

PyTree = Any


def train_and_evaluate(
    config: ConfigDict, workdir: str | Path, *, split: Split | None = None
) -> dict[str, Any]:
    """Trains the configured model, validating every epoch (or every `train.eval_every_steps`
    steps), and evaluates the best checkpoint.

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
    # Every value is checked before the run directory is touched.
    validate_config(config)
    workdir = Path(workdir)
    start = StartUndo(workdir)
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunDirectoryError(f"cannot create the run directory {workdir}: {e}") from None
    lock = RunLock(workdir) if jax.process_index() == 0 else contextlib.nullcontext()
    try:
        with lock, StopSignals() as stop:
            start.arm()
            return _train_and_evaluate(config, workdir, split, stop)
    except BaseException:
        # A start refused before its first checkpoint leaves a new directory as it was.
        if jax.process_index() == 0:
            start.undo()
        raise


def _train_and_evaluate(
    config: ConfigDict, workdir: Path, split: Split | None, stop: StopSignals
) -> dict[str, Any]:
    task, partitioner = _start_run_directory(config, workdir, split)
    session, state, meta = _open_session(config, workdir, task, partitioner, stop)
    started = time.time()
    try:
        _fit(session, state, meta)
        session.ckpt.wait()
        train_seconds = time.time() - started
        results = _evaluate_best(session)
    finally:
        session.ckpt.close()
        session.logger.close()
    results.update(epochs=meta["epoch"], train_seconds=train_seconds)
    if jax.process_index() == 0:
        write_json_atomic(workdir / "results.json", results)
    return results


def _start_run_directory(
    config: ConfigDict, workdir: Path, split: Split | None
) -> tuple[Task, Partitioner]:
    """Checks the config against the run directory and the devices, prepares the task's data
    and encoders, and writes `config.json`."""
    check_config_matches(config, workdir)
    task = make_task(config, split)
    partitioner = Partitioner(
        model_axis_size=config.parallel.model_axis_size, sharded_tables=task.sharded_tables
    )
    for key, size in (
        ("train.batch_size", config.train.batch_size),
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
    return task, partitioner


def _open_session(
    config: ConfigDict, workdir: Path, task: Task, partitioner: Partitioner, stop: StopSignals
) -> tuple[Session, TrainState, dict[str, Any]]:
    """Builds the optimizer, checkpointer, compiled steps and logger, and the state to start
    from (restored from the latest checkpoint, or initialised from the seed)."""
    train_cfg = config.train
    steps_per_epoch = task.steps_per_epoch(train_cfg.batch_size)
    total_steps = steps_per_epoch * train_cfg.num_epochs
    tx = make_optimizer(train_cfg, total_steps)
    init_rng, train_rng = jax.random.split(jax.random.key(config.seed))
    shared = _SharedSteps.of(config, task, partitioner, tx, total_steps)
    init_fn = shared.init_fn()
    ckpt = Checkpointer(
        workdir,
        keep=config.checkpoint.keep,
        best_metric=task.best_metric,
        best_mode=task.best_mode,
        async_save=config.checkpoint.async_save,
    )
    abstract_state = partitioner.abstract(jax.eval_shape(init_fn, init_rng))
    state_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(abstract_state))
    # The kept checkpoints, the best one and one being written, plus metadata.
    check_writable(workdir, state_bytes * (config.checkpoint.keep + 2) + 16 * 2**20)
    state, meta = restore_or_init(ckpt, partitioner, abstract_state, init_fn, init_rng)
    state_shardings = jax.tree.map(lambda x: x.sharding, abstract_state)
    session = Session(
        config=config,
        task=task,
        partitioner=partitioner,
        ckpt=ckpt,
        logger=MetricLogger(workdir, tensorboard=config.log.tensorboard),
        stop=stop,
        train_step=shared.train_step(state_shardings),
        eval_step=shared.eval_step(),
        train_rng=train_rng,
        abstract_state=abstract_state,
        steps_per_epoch=steps_per_epoch,
    )
    return session, state, meta


@dataclasses.dataclass(frozen=True)
class _SharedSteps:
    """A run's init function and jitted steps, shared with earlier runs of this process that
    had the same model functions, optimiser settings and devices (`step_cache`): jit then
    finds their compilations instead of compiling again.

    A task opts in with a hashable `functions` attribute holding its pure init, loss and
    predict functions (`CTRTask.functions`); any other task gets fresh ones (key None).
    """

    task: Task
    partitioner: Partitioner
    tx: optax.GradientTransformation
    key: tuple[Any, ...] | None
    # train.ema_decay: 0 = no moving average of the parameters.
    ema_decay: float = 0.0

    @classmethod
    def of(
        cls,
        config: ConfigDict,
        task: Task,
        partitioner: Partitioner,
        tx: optax.GradientTransformation,
        total_steps: int,
    ) -> _SharedSteps:
        functions = getattr(task, "functions", None)
        key = None
        if functions is not None:
            # The optimiser is made from config.train and the run's length, nothing else.
            optimiser = json.dumps(config.train.to_dict(), sort_keys=True, default=str)
            key = (functions, optimiser, total_steps, partitioner.layout)
        return cls(task, partitioner, tx, key, float(config.train.get("ema_decay", 0.0)))

    def _functions(self) -> Any:
        return self.task if self.key is None else self.key[0]

    def _key(self, name: str) -> tuple[Any, ...] | None:
        return None if self.key is None else (name, *self.key)

    def init_fn(self) -> Callable[[jax.Array], TrainState]:
        """`init_fn(rng) -> TrainState`, one function object per key (jit caches by it)."""
        init_params, tx, ema = self._functions().init_params, self.tx, self.ema_decay > 0

        def init_fn(rng: jax.Array) -> TrainState:
            return TrainState.create(init_params(rng), tx, ema=ema)

        return step_cache.shared(self._key("init"), lambda: init_fn)

    def train_step(self, state_shardings: PyTree) -> Any:
        """`Partitioner.compile_train_step` of the task's loss and the optimiser."""
        step = make_train_step(self._functions().loss_sums, self.tx, self.ema_decay)
        return step_cache.shared(
            self._key("train"), lambda: self.partitioner.compile_train_step(step, state_shardings)
        )

    def eval_step(self) -> Any:
        """`Partitioner.compile_eval_step` of the task's predict."""
        step = make_eval_step(self._functions().predict)
        return step_cache.shared(
            self._key("eval"), lambda: self.partitioner.compile_eval_step(step)
        )


def _fit(session: Session, state: TrainState, meta: dict[str, Any]) -> None:
    """The epochs from where `state` is to `train.num_epochs` or early stopping."""
    config = session.config
    epoch, skip = divmod(int(jax.device_get(state.step)), session.steps_per_epoch)
    while epoch < config.train.num_epochs and not patience_spent(config, meta):
        # With train.eval_every_steps, validation (and early stopping) happen inside.
        state = train_epoch(session, state, meta, epoch=epoch, skip=skip)
        skip = 0
        if validate_now(config, epoch):
            validate_and_save(session, state, meta, epoch)
        meta["epoch"] = epoch + 1
        epoch += 1
    every = config.train.eval_every_steps
    if every and int(jax.device_get(state.step)) % every and not patience_spent(config, meta):
        # The steps after the last validation of a step cadence: validate where training ends.
        validate_and_save(session, state, meta, epoch - 1)


def _evaluate_best(session: Session) -> dict[str, Any]:
    """Restores the best checkpoint and evaluates it on "valid" and, when there is one, "test".

    Returns:
      {"valid", "test" (absent without a test part), "best_step", "best_epoch"}.
    """
    scored = session.ckpt.steps_by_metric()
    if not scored:
        raise TrainingError("no checkpoint with validation metrics was saved")
    # The best intact one: a corrupt best is skipped with a warning.
    best_step, best_state, best_meta = session.ckpt.restore_intact(
        session.abstract_state, steps=scored
    )
    params = best_state.eval_params
    results: dict[str, Any] = {"valid": evaluate(session, params, "valid")}
    if "test" in session.task.parts:
        test = evaluate(session, params, "test")
        session.logger.write(best_step, "test", test)
        print_metrics(f"best checkpoint (step {best_step}) test", test)
        results["test"] = test
    results.update(best_step=best_step, best_epoch=best_meta["best_epoch"])
    return results
