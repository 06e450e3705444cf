"""The measurements behind the benchmark programs, each run inside one worker process.

Every function takes a training config (from `configs/`, adjusted by `make_config`), runs the
project's real code path and returns one flat dict of numbers:

- `train_throughput`: the trainer's step (`Partitioner.compile_train_step` of the task's
  loss), fed by the task's batches through `Partitioner.prefetch_to_devices`, as
  `train_and_evaluate` runs it;
- `ranking_throughput`: `validation.evaluate_part` over a held-out part: BERT4Rec's next-item scores
  over the whole catalogue, ranks, and the metrics on the host;
- `itemcf_throughput`: item-based CF (NumPy/SciPy on the host) scoring the whole catalogue;
- `recommend_latency`: `shortrec_jax.pipeline.Recommender.recommend()` per request.

The device count is fixed when JAX starts, so the caller runs each measurement in its own
process (`common.run_worker`); that also makes each peak memory the measurement's own.
"""

from __future__ import annotations

import itertools
import resource
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ml_collections import ConfigDict

# Data sets of the benchmarks: a source and its options for `config.data`.
DATASETS: dict[str, dict[str, Any]] = {
    "ml-100k": {"source": "ml-100k", "options": {}},
    # The size of MovieLens 1M (6,040 users, 3,416 items after its 20-rating filter, about
    # 1M ratings), drawn by the power-law generator: no download needed.
    "ml-1m-synthetic": {
        "source": "synthetic",
        "options": {"num_users": 6_040, "num_items": 3_416, "num_interactions": 1_000_000},
    },
}


def synthetic_data(users: int, items: int, interactions: int) -> dict[str, Any]:
    """A `DATASETS`-style entry for a synthetic log of the given size."""
    return {
        "source": "synthetic",
        "options": {"num_users": users, "num_items": items, "num_interactions": interactions},
    }


def make_config(
    family: str, data: dict[str, Any], dtype: str, model_axis_size: int = 1
) -> ConfigDict:
    """The shipped config of `family` ("xdeepfm" or "bert4rec") on `data`, quiet.

    BERT4Rec's sampled-negative evaluation is turned off: it is a second metric of the same
    scores, and its sampling would dominate preparation time on large catalogues.
    """
    from configs import bert4rec_ml100k, xdeepfm_ml100k

    module = {"xdeepfm": xdeepfm_ml100k, "bert4rec": bert4rec_ml100k}[family]
    config = module.get_config()
    config.data.source = data["source"]
    config.data.source_options = ConfigDict(dict(data["options"]))
    config.model.dtype = dtype
    config.parallel.model_axis_size = model_axis_size
    config.log.progress_bar = False
    config.log.tensorboard = False
    if family == "bert4rec":
        config.eval.sampled_negatives = 0
    return config


def peak_host_mib() -> float:
    """This process's peak resident memory so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_device_mib() -> float | None:
    """The first device's peak allocated memory, MiB, where the backend reports it (GPUs)."""
    import jax

    stats = jax.devices()[0].memory_stats()
    if not stats or "peak_bytes_in_use" not in stats:
        return None
    return stats["peak_bytes_in_use"] / 2**20


def _prepared(config: ConfigDict) -> tuple[Any, float]:
    """The config's task with its data loaded, split and encoded; (task, seconds)."""
    from shortrec_jax.training.tasks import make_task

    task = make_task(config)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        task.prepare(Path(tmp))
    return task, time.perf_counter() - start


def _partitioner(config: ConfigDict, task: Any) -> Any:
    from shortrec_jax.training.parallel import Partitioner

    return Partitioner(
        model_axis_size=config.parallel.model_axis_size, sharded_tables=task.sharded_tables
    )


def _flops_per_example(config: ConfigDict, task: Any, *, train: bool) -> int:
    """Model FLOPs of one example (training: forward + backward, about 3x the forward)."""
    if config.model.name in ("bert4rec", "sasrec"):
        from shortrec_jax.models.transformer import transformer_flops_per_sequence

        predictions = (config.train.max_predictions or None) if train else 1
        forward = transformer_flops_per_sequence(task.model.config, predictions)
    else:
        from shortrec_jax.models.xdeepfm import xdeepfm_flops_per_example

        forward = xdeepfm_flops_per_example(task.model.config)
    return 3 * forward if train else forward


def peak_flops(dtype: str) -> dict[str, Any]:
    """The devices' peak FLOP/s for `dtype` and where the figure comes from.

    Simulated CPU devices share one machine's cores, so their peak is the machine's;
    accelerators add up.
    """
    import jax

    from benchmarks.common import device_peak

    peak, source = device_peak(dtype)
    if jax.default_backend() != "cpu":
        peak *= jax.device_count()
    return {"peak_flops": peak, "peak_source": source}


def _efficiency(
    flops_per_example: int, per_second: float, dtype: str, peak: dict[str, Any] | None
) -> dict[str, Any]:
    """Achieved FLOP/s and its share of the peak (`peak_flops(dtype)` when not given)."""
    peak = peak or peak_flops(dtype)
    achieved = flops_per_example * per_second
    return {
        "mflop_per_example": flops_per_example / 1e6,
        "achieved_gflops": achieved / 1e9,
        "peak_fraction": achieved / peak["peak_flops"],
        "peak_source": peak["peak_source"],
    }


def train_throughput(
    config: ConfigDict,
    *,
    steps: int | None = None,
    epochs: float = 1.0,
    warmup: int = 2,
    peak: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Times the trainer's step: `steps` steps (or `epochs` epochs) after `warmup` steps.

    The first warm-up step compiles. Batches come epoch after epoch, the padded last batch
    of each included, through the same host batching, background transfer and bounded
    queue of steps as `train_and_evaluate`. `peak` is a `peak_flops` result (measured here
    when None).

    Returns:
      prepare_s (load, split, encode), compile_s (the first step), step_s, per_second
      (examples or sequences), epoch_s (steps per epoch x step_s), steps_per_epoch,
      params (count), cores_busy, system_share and faults_per_step of the timed steps, FLOP
      figures, peak memory.
    """
    import collections

    import jax

    from shortrec_jax.training.optim import make_optimizer
    from shortrec_jax.training.steps import TrainState, make_train_step

    task, prepare_s = _prepared(config)
    part = _partitioner(config, task)
    batch_size = config.train.batch_size
    steps_per_epoch = task.steps_per_epoch(batch_size)
    timed = steps if steps is not None else max(1, round(epochs * steps_per_epoch))
    tx = make_optimizer(config.train, steps_per_epoch * config.train.num_epochs)
    rng = jax.random.key(config.seed)
    state = part.init_state(lambda k: TrainState.create(task.init_params(k), tx), rng)
    step = part.compile_train_step(make_train_step(task.loss_sums, tx), part.shardings(state))
    rows = part.process_rows(batch_size)

    def host_batches() -> Iterator[dict[str, Any]]:
        for epoch in itertools.count():
            yield from task.train_batches(epoch, batch_size, part.data_size, rows)

    in_flight: collections.deque[Any] = collections.deque()
    with part.prefetch_to_devices(host_batches(), size=config.train.prefetch) as batches:
        start = time.perf_counter()
        state, sums = step(state, next(batches), rng)
        jax.block_until_ready(sums)
        compile_s = time.perf_counter() - start
        for _ in range(warmup - 1):
            state, sums = step(state, next(batches), rng)
        jax.block_until_ready(sums)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        for _ in range(timed):
            state, sums = step(state, next(batches), rng)
            in_flight.append(sums)
            if len(in_flight) > config.train.max_steps_in_flight:
                jax.block_until_ready(in_flight.popleft())
        jax.block_until_ready(state)
        elapsed = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_SELF)
    step_s = elapsed / timed
    cpu_s = after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime
    per_second = batch_size / step_s
    return {
        "prepare_s": prepare_s,
        "compile_s": compile_s,
        "timed_steps": timed,
        "step_s": step_s,
        "per_second": per_second,
        "epoch_s": steps_per_epoch * step_s,
        "steps_per_epoch": steps_per_epoch,
        "batch": batch_size,
        "params": sum(x.size for x in jax.tree.leaves(state.params)),
        # Cores kept busy (user + system CPU seconds per wall second) and the share of it
        # spent in the kernel, and minor page faults per step (host buffers mapped afresh).
        "cores_busy": cpu_s / elapsed,
        "system_share": (after.ru_stime - usage.ru_stime) / max(cpu_s, 1e-9),
        "faults_per_step": (after.ru_minflt - usage.ru_minflt) / timed,
        **_efficiency(
            _flops_per_example(config, task, train=True), per_second, config.model.dtype, peak
        ),
        "host_peak_mib": peak_host_mib(),
        "device_peak_mib": peak_device_mib(),
    }


def ranking_throughput(
    config: ConfigDict, part: str = "test", repeats: int = 1, peak: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Times `evaluate_part` of BERT4Rec over `part`: full-catalogue scores of every user.

    The first pass compiles; the fastest of `repeats` later passes counts. `peak` as in
    `train_throughput`.
    """
    import jax

    from shortrec_jax.training.steps import make_eval_step
    from shortrec_jax.training.validation import evaluate_part

    task, prepare_s = _prepared(config)
    devices = _partitioner(config, task)
    # Untrained parameters: scoring costs the same whatever their values.
    params = devices.init_state(task.init_params, jax.random.key(config.seed))
    eval_step = devices.compile_eval_step(make_eval_step(task.predict))

    def run() -> dict[str, float]:
        return evaluate_part(
            task,
            eval_step,
            devices,
            params,
            part,
            config.eval.batch_size,
            config.train.max_steps_in_flight,
        )

    start = time.perf_counter()
    run()
    first_s = time.perf_counter() - start
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    users = int(task.eval[part]["target"].shape[0])
    per_second = users / best
    return {
        "prepare_s": prepare_s,
        "compile_s": first_s - best,
        "users": users,
        "items": task.num_items,
        "pass_s": best,
        "per_second": per_second,
        **_efficiency(
            _flops_per_example(config, task, train=False), per_second, config.model.dtype, peak
        ),
        "host_peak_mib": peak_host_mib(),
        "device_peak_mib": peak_device_mib(),
    }


def itemcf_throughput(config: ConfigDict, repeats: int = 2) -> dict[str, Any]:
    """Times item-based CF scoring every item for every test user (host NumPy/SciPy).

    The full-ranking variant of benchmarks/baselines.py (binary values, summed over the
    user's items, 100 neighbours per item), fitted on the config's training part.
    """
    from benchmarks.common import best_time
    from shortrec_jax.baselines import ItemCF
    from shortrec_jax.training.task_common import load_split

    start = time.perf_counter()
    split = load_split(config)
    prepare_s = time.perf_counter() - start
    start = time.perf_counter()
    model = ItemCF(values="binary", aggregate="sum", k=None, max_neighbours=100).fit(split.train)
    fit_s = time.perf_counter() - start
    users = split.test.users
    score_s = best_time(lambda: model.score_all(users), repeats)
    return {
        "prepare_s": prepare_s,
        "fit_s": fit_s,
        "users": int(users.size),
        "items": split.train.num_items,
        "pass_s": score_s,
        "per_second": users.size / score_s,
        "host_peak_mib": peak_host_mib(),
    }


def recommend_latency(requests: int = 200, seed: int = 0) -> dict[str, Any]:
    """Latency of `Recommender.recommend(user=..., k=10)` on ml-100k, per request.

    Trains a quick xDeepFM ranker and a quick BERT4Rec sequence recaller (one epoch each:
    latency does not depend on how well they are trained), builds the pipeline from the run
    directories, warms it up, then times `requests` requests of random known users.

    Returns:
      {"skipped": reason} when the pipeline is not in this checkout.
    """
    import numpy as np

    try:
        from shortrec_jax.pipeline import Recommender
    except ImportError as e:
        return {"skipped": f"shortrec_jax.pipeline is not available ({e})"}
    from shortrec_jax.training.loop import train_and_evaluate

    data = DATASETS["ml-100k"]
    ranker = make_config("xdeepfm", data, "float32")
    ranker.train.num_epochs = 1
    sequence = make_config("bert4rec", data, "float32")
    sequence.train.num_epochs = 1
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        train_and_evaluate(ranker, Path(tmp) / "xdeepfm")
        train_and_evaluate(sequence, Path(tmp) / "bert4rec")
        train_s = time.perf_counter() - start
        recommender = Recommender.from_runs(
            Path(tmp) / "xdeepfm", sequence_workdir=Path(tmp) / "bert4rec"
        )
        recommender.warm_up()
        users = np.random.default_rng(seed).choice(recommender.data.user_ids, requests)
        latencies = []
        for user in users.tolist():
            start = time.perf_counter()
            recommender.recommend(user=user, k=10)
            latencies.append(time.perf_counter() - start)
    ms = np.asarray(latencies) * 1e3
    return {
        "train_s": train_s,
        "requests": requests,
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "per_second": requests / float(np.sum(latencies)),
        "compilations": recommender.compilations(),
        "host_peak_mib": peak_host_mib(),
    }
