"""Which CPU layout trains the default xDeepFM fastest: devices, XLA flags, allocator.

  python -m benchmarks.layout [--layouts=1,2,4,8] [--rounds=2] [--epochs=1]

Times the trainer's step (`measure.train_throughput`, default config) under each layout, each
in its own worker process, the layouts taking turns round after round so that a change in
the machine's load falls on all of them alike; a row gives the best round's examples/s and
its ratio to the first layout's best. This is how `shortrec_jax.platform`'s automatic CPU
layout was chosen (benchmarks/RESULTS.md). Layouts (--layouts, comma-separated):
  N          N CPU devices (XLA_FLAGS=--xla_force_host_platform_device_count=N)
  N+sched    ... with XLA's concurrency-optimised scheduler (independent operations in parallel)
  N+malloc   ... with glibc's allocator keeping freed memory (no fresh pages every step)
  auto       what `shortrec_jax.platform.configure_cpu` chooses on this machine
The columns cores_busy (CPU seconds per wall second), system_share (the kernel's share of
them) and faults_per_step (minor page faults) say where the time goes.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from benchmarks.common import git_commit, machine_description, print_table, run_worker

_SCHEDULER = "--xla_cpu_enable_concurrency_optimized_scheduler=true"
# glibc reads these at start-up: keep freed memory in the heap instead of unmapping it.
_MALLOC_ENV = {
    "MALLOC_ARENA_MAX": "1",
    "MALLOC_MMAP_MAX_": "0",
    "MALLOC_TRIM_THRESHOLD_": str(2**31 - 1),
}


def worker(epochs: float, auto: bool) -> dict[str, Any]:
    """One measurement of the default xDeepFM config (in a worker process)."""
    if auto:
        from shortrec_jax import platform

        layout = platform.configure_cpu()
    from benchmarks import measure
    from benchmarks.common import device_description

    config = measure.make_config("xdeepfm", measure.DATASETS["ml-100k"], "float32")
    result = measure.train_throughput(config, epochs=epochs)
    return {**device_description(), **result, **({"chosen": layout} if auto else {})}


def _spec(layout: str) -> dict[str, Any]:
    """run_worker keyword arguments of a layout name."""
    if layout == "auto":
        return {"devices": None}
    count, *options = layout.split("+")
    unknown = set(options) - {"sched", "malloc"}
    if unknown or not count.isdigit():
        raise argparse.ArgumentTypeError(f"unknown layout {layout!r}")
    return {
        "devices": int(count),
        "xla_flags": [_SCHEDULER] if "sched" in options else [],
        "env": _MALLOC_ENV if "malloc" in options else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--auto", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--layouts", default="1,2,4,8,1+sched,2+malloc,auto")
    parser.add_argument("--rounds", type=int, default=2, help="times each layout is measured")
    parser.add_argument("--epochs", type=float, default=1.0, help="timed epochs per measurement")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.epochs, args.auto)))
        return
    layouts = [x for x in args.layouts.split(",") if x]
    specs = {name: _spec(name) for name in layouts}
    print(f"commit {git_commit()}; machine: {machine_description()}")
    best: dict[str, dict[str, Any]] = {}
    for round_ in range(args.rounds):
        for name in layouts:
            extra = ["--epochs", str(args.epochs)]
            kwargs = specs[name]
            if name == "auto":
                extra.append("--auto")
            result = run_worker("benchmarks.layout", extra, **kwargs)
            print(
                f"round {round_ + 1} {name}: {result['per_second']:,.0f} examples/s, "
                f"{result['cores_busy']:.2f} cores busy, "
                f"{result['faults_per_step']:,.0f} faults/step",
                flush=True,
            )
            # Examples per CPU-second: the work the layout wastes, whatever share of the
            # cores the other jobs of a shared machine leave it.
            result["per_cpu_second"] = result["per_second"] / max(result["cores_busy"], 1e-9)
            if name not in best or result["per_second"] > best[name]["per_second"]:
                best[name] = {"layout": name, **result}
    rows = [best[name] for name in layouts]
    for row in rows:
        row["ratio"] = row["per_second"] / rows[0]["per_second"]
    print(f"machine at the end: {machine_description()}")
    print_table(
        f"Default xDeepFM step by CPU layout (best of {args.rounds} rounds)",
        rows,
        [
            "layout",
            "devices",
            "per_second",
            "ratio",
            "per_cpu_second",
            "step_s",
            "cores_busy",
            "system_share",
            "faults_per_step",
            "host_peak_mib",
            "chosen",
        ],
    )


if __name__ == "__main__":
    main()
