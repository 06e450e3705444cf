"""Fit and scoring time of every traditional method on MovieLens 100K.

  python -m benchmarks.baselines [--repeats=3] [--seed=0]

Fits each method of `shortrec_jax.baselines.BASELINES` with its default hyperparameters (plus
the full-ranking item-CF variant) on the study's split, 80% of the ratings drawn at random,
then scores every item for all 943 users with `score_all`. Each time is the fastest of
`--repeats` runs. The methods are NumPy/SciPy on the host: the numbers measure the CPU.
"""

from __future__ import annotations

import argparse
import platform

import numpy as np

from benchmarks.common import best_time, git_commit, print_table
from shortrec_jax.baselines import BASELINES, ItemCF
from shortrec_jax.data import load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per timing; the best counts")
    parser.add_argument("--seed", type=int, default=0, help="seed of the 80/20 split")
    args = parser.parse_args()

    data = load("ml-100k")
    train = data.take(np.random.default_rng(args.seed).random(data.num_interactions) < 0.8)
    users = np.arange(train.num_users)
    methods = dict(BASELINES)
    methods["item-cf (top-K: binary, sum, 100 nb.)"] = lambda: ItemCF(
        values="binary", aggregate="sum", k=None, max_neighbours=100
    )
    rows = []
    for name, make in methods.items():
        fitted = []
        fit_s = best_time(
            lambda make=make, fitted=fitted: fitted.append(make().fit(train)), args.repeats
        )
        score_s = best_time(lambda model=fitted[-1]: model.score_all(users), args.repeats)
        rows.append(
            {
                "method": name,
                "fit s": fit_s,
                "score_all s": score_s,
                "users/s": train.num_users / score_s,
            }
        )
    print_table(
        f"Traditional methods on ml-100k ({train.num_interactions:,} training ratings, "
        f"{train.num_users} users x {train.num_items:,} items; {platform.processor() or 'CPU'}, "
        f"commit {git_commit()})",
        rows,
        ["method", "fit s", "score_all s", "users/s"],
    )


if __name__ == "__main__":
    main()
