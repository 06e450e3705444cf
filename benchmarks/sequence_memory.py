"""Host memory of BERT4Rec and SASRec on a log too large for [users, items] arrays.

  python -m benchmarks.sequence_memory              # both models, minutes on 2 CPU cores
  python -m benchmarks.sequence_memory --models=sasrec --steps=3

A synthetic power-law log of 30,000 users x 25,000 items x 300,000 interactions (a dense
[users, items] array of it holds 750M entries: 750 MB as bool, 6 GB as float64). For each
model, in its own process: the shipped config (configs/<model>_ml100k.py) on that log, its
data prepared as `train_and_evaluate` does (leave-one-out split, training windows, evaluation
arrays with 100 popularity-sampled test negatives), a few training steps, then full-ranking
validation of every user over the whole catalogue. Prints the host peak (resident set size)
of each process, which covers all of it.
"""

from __future__ import annotations

import argparse
import json
import sys

from benchmarks.common import print_table, run_worker

USERS, ITEMS, INTERACTIONS = 30_000, 25_000, 300_000
MODELS = ("bert4rec", "sasrec")


def worker(model: str, steps: int) -> dict[str, float]:
    """Trains `steps` steps and validates once; the numbers of this process."""
    import importlib

    from ml_collections import ConfigDict

    from benchmarks import measure

    config = importlib.import_module(f"configs.{model}_ml100k").get_config()
    data = measure.synthetic_data(USERS, ITEMS, INTERACTIONS)
    config.data.source = data["source"]
    config.data.source_options = ConfigDict(data["options"])
    config.log.progress_bar = False
    config.log.tensorboard = False
    train = measure.train_throughput(config, steps=steps, warmup=1)
    rank = measure.ranking_throughput(config, part="valid", repeats=1)
    return {
        "model": model,
        "prepare_s": train["prepare_s"],
        "step_s": train["step_s"],
        "steps_per_epoch": train["steps_per_epoch"],
        "valid_users": rank["users"],
        "valid_pass_s": rank["pass_s"],
        "host_peak_mib": max(train["host_peak_mib"], rank["host_peak_mib"]),
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.models, args.steps)))
        return
    rows = [
        run_worker("benchmarks.sequence_memory", [f"--models={m}", f"--steps={args.steps}"])
        for m in args.models.split(",")
    ]
    title = f"synthetic log: {USERS:,} users x {ITEMS:,} items x {INTERACTIONS:,} interactions"
    print_table(title, rows, list(rows[0]))


if __name__ == "__main__":
    main(sys.argv[1:])
