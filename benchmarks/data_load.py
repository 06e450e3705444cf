"""Load + split + encode time and peak memory: the bundled ml-100k and a 10M-interaction log.

  python -m benchmarks.data_load [--interactions=10000000]

Each case runs in its own process so that its peak resident memory is its own. The large
case writes a synthetic power-law log as a GroupLens `ratings.csv` (the ml-20m layout) and
reads it back with the real loader, so the time is that of parsing a file, not of generating
arrays.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from benchmarks.common import git_commit, print_table, run_worker


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(case: str, interactions: int) -> dict:
    import numpy as np

    from shortrec_jax.data import load
    from shortrec_jax.data.features import FeatureEncoder
    from shortrec_jax.data.fields import default_ctr_fields
    from shortrec_jax.data.splits import random_split
    from shortrec_jax.data.synthetic import synthetic_log

    with tempfile.TemporaryDirectory() as tmp:
        if case == "ml-100k":
            source, options = "ml-100k", {}
        else:
            ds = synthetic_log(
                num_users=interactions // 100,
                num_items=interactions // 500,
                num_interactions=interactions,
                seed=0,
            )
            folder = Path(tmp) / "ml-synthetic"
            folder.mkdir()
            rows = np.stack([ds.users + 1, ds.items + 1], axis=1)
            with open(folder / "ratings.csv", "w") as f:
                f.write("userId,movieId,rating,timestamp\n")
                np.savetxt(
                    f,
                    np.column_stack([rows, ds.ratings.astype(np.int64), ds.timestamps]),
                    fmt="%d",
                    delimiter=",",
                )
            with open(folder / "movies.csv", "w") as f:
                f.write("movieId,title,genres\n")
                genres = ds.item_multi_hot["genres"]
                for i in range(ds.num_items):
                    f.write(f'{i + 1},"Movie {i} (2000)",{"|".join(genres.row(i))}\n')
            source, options = f"grouplens:{folder}", {"duplicates": "keep"}
            del ds, rows
        base = _peak_mib()
        t0 = time.perf_counter()
        ds = load(source, **options)
        t1 = time.perf_counter()
        split = random_split(ds, (0.8, 0.1, 0.1), seed=0)
        t2 = time.perf_counter()
        encoder = FeatureEncoder.fit(split.train, default_ctr_fields(ds))
        arrays = encoder.encode(split.train)
        t3 = time.perf_counter()
    return {
        "case": case,
        "interactions": ds.num_interactions,
        "load_s": t1 - t0,
        "split_s": t2 - t1,
        "encode_s": t3 - t2,
        "encoded_rows": int(arrays["label"].shape[0]),
        "rows_per_s": ds.num_interactions / (t3 - t0),
        "peak_mib": _peak_mib(),
        "peak_over_start_mib": _peak_mib() - base,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--case", default="ml-100k", help=argparse.SUPPRESS)
    parser.add_argument("--interactions", type=int, default=10_000_000)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.case, args.interactions)))
        return
    rows = [
        run_worker(
            "benchmarks.data_load", ["--case", case, "--interactions", str(args.interactions)]
        )
        for case in ("ml-100k", "synthetic")
    ]
    print(f"commit {git_commit()}")
    print_table(
        "Load, split (80/10/10) and encode (CTR features of the training part)",
        rows,
        ["case", "interactions", "load_s", "split_s", "encode_s", "rows_per_s", "peak_mib"],
    )


if __name__ == "__main__":
    main()
