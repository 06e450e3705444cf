"""xDeepFM training throughput on ml-100k: examples/s and seconds per epoch.

  python -m benchmarks.xdeepfm [--devices=1,8] [--sizes=default,paper] [--recbole-python=PY]

Runs the project's real training step (the jit-compiled shard_map step of the trainer, fed
by the trainer's batching and background transfer; `measure.train_throughput`) for two timed
epochs after two warm-up steps, once per (model size, simulated device count), each in its own
process. `python -m benchmarks` gives the same figure beside the other cases. Sizes:
  default  RecBole's: embedding 10, CIN [100, 100, 100] split in half, MLP [128, 128, 128],
           batch 2048 (what configs/xdeepfm_ml100k.py trains);
  paper    the xDeepFM paper's: CIN [200, 200, 200] without split, DNN [400, 400], batch 4096.
With --recbole-python (a Python that has recbole and torch installed), RecBole 1.2.1's own
xDeepFM trains the same rows at the default size in the same invocation, and the table
prints our examples/s over RecBole's.
"""

from __future__ import annotations

import argparse
import json

from benchmarks.common import device_description, git_commit, print_table, run_worker

SIZES = {
    "default": {"batch": 2048, "overrides": {}},
    "paper": {
        "batch": 4096,
        "overrides": {
            "cin_layers": (200, 200, 200),
            "cin_split_half": False,
            "mlp_layers": (400, 400),
        },
    },
}


def worker(size: str, epochs: int, dtype: str) -> dict:
    from benchmarks import measure

    config = measure.make_config("xdeepfm", measure.DATASETS["ml-100k"], dtype)
    config.train.batch_size = SIZES[size]["batch"]
    for k, v in SIZES[size]["overrides"].items():
        config.model[k] = v
    result = measure.train_throughput(config, epochs=epochs)
    return {
        **device_description(),
        "size": size,
        "dtype": dtype,
        "batch": config.train.batch_size,
        "seconds_per_epoch": result["epoch_s"],
        "examples_per_second": result["per_second"],
        "train_mflop_per_example": result["mflop_per_example"],
        "achieved_gflops": result["achieved_gflops"],
        "peak_fraction": result["peak_fraction"],
        "peak_source": result["peak_source"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--size", default="default", help=argparse.SUPPRESS)
    parser.add_argument("--devices", default="1,8", help="simulated CPU device counts")
    parser.add_argument("--sizes", default="default,paper")
    parser.add_argument("--dtype", default="float32", help="compute dtype")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs")
    parser.add_argument("--recbole-python", default="", help="a Python with recbole installed")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.size, args.epochs, args.dtype)))
        return
    rows = []
    recbole = None
    if args.recbole_python:
        from benchmarks.recbole_baseline import run_recbole

        recbole = run_recbole(args.recbole_python, "xDeepFM", epochs=args.epochs)
    for size in args.sizes.split(","):
        for n in (int(d) for d in args.devices.split(",")):
            r = run_worker(
                "benchmarks.xdeepfm",
                ["--size", size, "--epochs", str(args.epochs), "--dtype", args.dtype],
                devices=n,
            )
            if recbole and size == "default":
                r["vs_recbole"] = r["examples_per_second"] / recbole["examples_per_second"]
            rows.append(r)
    if recbole:
        rows.append(
            {
                "size": "default (RecBole 1.2.1, torch)",
                "devices": recbole["threads"],
                "batch": 2048,
                "seconds_per_epoch": recbole["seconds_per_epoch"],
                "examples_per_second": recbole["examples_per_second"],
                "vs_recbole": 1.0,
            }
        )
    print(
        f"commit {git_commit()}, {rows[0]['device']} ({rows[0]['backend']}), jax {rows[0]['jax']}"
    )
    print_table(
        "xDeepFM training on ml-100k (80,000 rows per epoch)",
        rows,
        [
            "size",
            "devices",
            "dtype",
            "batch",
            "seconds_per_epoch",
            "examples_per_second",
            "train_mflop_per_example",
            "achieved_gflops",
            "peak_fraction",
            "vs_recbole",
        ],
    )


if __name__ == "__main__":
    main()
