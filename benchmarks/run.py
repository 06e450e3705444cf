"""The benchmark program: training, ranking and serving speed in one table.

  python -m benchmarks                        # the default table (a few minutes on 2 cores)
  python -m benchmarks --compare=devices      # ... 1 device against 8, ratios printed
  python -m benchmarks --compare=dtype        # ... float32 against bfloat16
  python -m benchmarks --scaling              # 1/2/4/8 devices; data and catalogue growth

Cases (each in its own process, see benchmarks/measure.py):
  xdeepfm-train   xDeepFM training examples/s (configs/xdeepfm_ml100k.py)
  bert4rec-train  BERT4Rec training sequences/s (configs/bert4rec_ml100k.py)
  bert4rec-rank   BERT4Rec full-ranking evaluation users/s (next-item scores over the whole
                  catalogue, ranks and metrics)
  itemcf-rank     item-CF full-ranking users/s (NumPy/SciPy on the host)
  recommend       `Recommender.recommend()` latency (ml-100k; skipped without the pipeline)
on ml-100k and on a synthetic log of ml-1m's size (6,040 users, 3,416 items, 1M
interactions). Training times a fixed number of steps after two warm-up steps (the first
compiles); seconds per epoch are steps per epoch x seconds per step. Each row gives the model
FLOPs per example and the share of the device's peak reached (datasheet peaks for known
GPUs; on a CPU the measured float32 or bfloat16 matmul rate of the machine).

--compare runs a baseline in the same invocation and adds "ratio" (this row's throughput over
its baseline's): `devices` runs the device cases on 1 and on 8 simulated CPU devices,
`dtype` in float32 and bfloat16 compute (parameters stay float32).
--scaling prints three tables (or those named: --scaling=devices,interactions,items):
throughput on 1/2/4/8 simulated devices; xDeepFM time and memory as the log grows
(--scaling-interactions, 10,000 items and interactions / 100 users); time and memory of the
--scaling-cases as the catalogue grows (--scaling-items, 6,040 users, 1M interactions).
Preparation (load, split, encode) and peak memory are measured per process.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from collections.abc import Sequence
from typing import Any

from benchmarks import measure
from benchmarks.common import git_commit, machine_description, print_table, run_worker

# Case -> (model family whose config it uses, unit, whether it runs on the devices).
CASES: dict[str, tuple[str, str, bool]] = {
    "xdeepfm-train": ("xdeepfm", "examples/s", True),
    "bert4rec-train": ("bert4rec", "sequences/s", True),
    "bert4rec-rank": ("bert4rec", "users/s", True),
    "itemcf-rank": ("bert4rec", "users/s", False),
    "recommend": ("xdeepfm", "requests/s", True),
}
# Steps timed per training case by default: enough for a stable mean, short on 2 cores.
DEFAULT_STEPS = {"xdeepfm": 20, "bert4rec": 6}

TABLE = [
    "case",
    "data",
    "devices",
    "dtype",
    "throughput",
    "unit",
    "ratio",
    "epoch_s",
    "mflop_per_example",
    "achieved_gflops",
    "peak_fraction",
    "host_peak_mib",
    "note",
]


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Runs one measurement (in a worker process) and returns its row."""
    from benchmarks.common import device_description

    case = spec["case"]
    if case == "peak":
        return {**device_description(), **measure.peak_flops(spec["dtype"])}
    family = CASES[case][0]
    peak = spec.get("peak")
    if case == "recommend":
        result = measure.recommend_latency(spec.get("requests", 200))
    else:
        data = spec["data"]
        data = measure.DATASETS[data] if isinstance(data, str) else data
        config = measure.make_config(family, data, spec["dtype"], spec.get("model_axis_size", 1))
        if case.endswith("-train"):
            result = measure.train_throughput(config, steps=spec["steps"], peak=peak)
        elif case == "bert4rec-rank":
            result = measure.ranking_throughput(config, peak=peak)
        else:
            result = measure.itemcf_throughput(config)
    return {**device_description(), **result}


class Runner:
    """Runs each measurement in a worker process and turns its result into a table row.

    The peak FLOP/s of each (dtype, device setup) is measured once, by its own worker, and
    handed to every measurement of that setup, so the rows' peak fractions share one
    denominator. (A single device is the machine's first, a GPU where there is one; several
    are simulated CPU devices.)
    """

    def __init__(self) -> None:
        self.peaks: dict[tuple[str, bool], dict[str, Any]] = {}

    def peak(self, dtype: str, devices: int) -> dict[str, Any] | None:
        key = (dtype, devices > 1)
        if key not in self.peaks:
            try:
                result = run_worker(
                    "benchmarks.run",
                    [json.dumps({"case": "peak", "dtype": dtype})],
                    devices=devices,
                )
            except RuntimeError:
                return None  # each measurement then measures the peak itself
            self.peaks[key] = {k: result[k] for k in ("peak_flops", "peak_source")}
        return self.peaks[key]

    def __call__(self, spec: dict[str, Any], devices: int) -> dict[str, Any]:
        """A row of the table: the worker's result, or the reason it has none."""
        label = spec["data"] if isinstance(spec["data"], str) else spec.get("label", "")
        case = spec["case"]
        row: dict[str, Any] = {
            "case": case,
            "data": label,
            "dtype": spec["dtype"] if CASES[case][2] else "",
            "unit": CASES[case][1],
        }
        print(f"... {case} on {label}, {devices} device(s), {spec['dtype']}", file=sys.stderr)
        if case in ("xdeepfm-train", "bert4rec-train", "bert4rec-rank"):
            spec = {**spec, "peak": self.peak(spec["dtype"], devices)}
        try:
            result = run_worker("benchmarks.run", [json.dumps(spec)], devices=devices)
        except RuntimeError as e:
            note = f"failed: {str(e).strip().splitlines()[-1]}"
            return {**row, "devices": devices, "note": note}
        row.update(result)
        row["devices"] = result.get("devices", devices)
        if "skipped" in result:
            row["note"] = result["skipped"]
        else:
            row["throughput"] = result["per_second"]
        if case == "recommend" and "p50_ms" in result:
            row["note"] = f"p50 {result['p50_ms']:.1f} ms, p95 {result['p95_ms']:.1f} ms"
        return row


def _with_ratio(rows: list[dict[str, Any]], baseline: dict[str, Any]) -> None:
    for row in rows:
        if row.get("throughput") and baseline.get("throughput"):
            row["ratio"] = row["throughput"] / baseline["throughput"]


def default_table(args: argparse.Namespace, run: Runner) -> list[dict[str, Any]]:
    """The cases on the data sets, with the --compare baseline beside each device case."""
    rows = []
    for case in args.cases:
        family, _, on_devices = CASES[case]
        for data in ["ml-100k"] if case == "recommend" else args.data:
            spec = {
                "case": case,
                "data": data,
                "dtype": args.dtype,
                "steps": args.steps or DEFAULT_STEPS[family],
            }
            baseline = run(spec, 1)
            rows.append(baseline)
            if not on_devices or args.compare is None or case == "recommend":
                continue
            if args.compare == "devices":
                other = run(spec, args.compare_devices)
            else:
                other = run({**spec, "dtype": "bfloat16"}, 1)
            _with_ratio([baseline, other], baseline)
            rows.append(other)
    return rows


SWEEPS = ("devices", "interactions", "items")


def scaling_tables(args: argparse.Namespace, run: Runner) -> dict[str, list[dict[str, Any]]]:
    """The --scaling sweeps: simulated devices, log size (xDeepFM), catalogue size."""
    tables: dict[str, list[dict[str, Any]]] = {sweep: [] for sweep in args.scaling}

    def spec(case: str, data: Any, label: str = "") -> dict[str, Any]:
        steps = args.steps or DEFAULT_STEPS[CASES[case][0]]
        return {"case": case, "data": data, "label": label, "dtype": args.dtype, "steps": steps}

    if "devices" in tables:
        for case in args.scaling_cases:
            rows = [run(spec(case, "ml-100k"), n) for n in (1, 2, 4, 8)]
            _with_ratio(rows, rows[0])
            tables["devices"] += rows
    if "interactions" in tables:
        for interactions in args.scaling_interactions:
            users = max(1_000, interactions // 100)
            data = measure.synthetic_data(users, 10_000, interactions)
            label = f"{users:,} users, {interactions:,} interactions"
            tables["interactions"].append(run(spec("xdeepfm-train", data, label), 1))
    if "items" in tables:
        for items in args.scaling_items:
            data = measure.synthetic_data(6_040, items, 1_000_000)
            for case in args.scaling_cases:
                tables["items"].append(run(spec(case, data, f"{items:,} items"), 1))
    return tables


def _sweeps(text: str) -> list[str]:
    sweeps = [x for x in text.split(",") if x]
    unknown = sorted(set(sweeps) - set(SWEEPS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown sweeps {unknown}; expected {SWEEPS}")
    return sweeps


def _ints(text: str) -> list[int]:
    return [int(x.replace("_", "")) for x in text.split(",") if x]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[2:]),
    )
    parser.add_argument("--worker", default="", help=argparse.SUPPRESS)
    parser.add_argument(
        "--cases", default=",".join(CASES), help="comma-separated cases (default: all)"
    )
    parser.add_argument(
        "--data", default="ml-100k,ml-1m-synthetic", help=f"data sets: {sorted(measure.DATASETS)}"
    )
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--steps", type=int, default=0, help="timed training steps (0: default)")
    parser.add_argument("--compare", choices=("devices", "dtype"), default=None)
    parser.add_argument("--compare-devices", type=int, default=8, help="devices of --compare")
    parser.add_argument(
        "--scaling",
        type=_sweeps,
        nargs="?",
        const=list(SWEEPS),
        default=None,
        help=f"the scaling tables instead (all, or some of {','.join(SWEEPS)})",
    )
    parser.add_argument(
        "--scaling-cases",
        default="xdeepfm-train,bert4rec-train",
        help="training cases of the devices and items sweeps",
    )
    parser.add_argument("--scaling-interactions", type=_ints, default=[100_000, 1_000_000])
    parser.add_argument("--scaling-items", type=_ints, default=[1_000, 10_000, 30_000])
    parser.add_argument("--json", default="", help="also write every row to this JSON file")
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    args.cases = [c for c in args.cases.split(",") if c]
    args.data = [d for d in args.data.split(",") if d]
    args.scaling_cases = [c for c in args.scaling_cases.split(",") if c]
    unknown = sorted(set(args.cases) - set(CASES)) + sorted(set(args.data) - set(measure.DATASETS))
    unknown += sorted(set(args.scaling_cases) - {"xdeepfm-train", "bert4rec-train"})
    if unknown:
        parser.error(f"unknown cases or data sets: {unknown}")

    header = f"{datetime.date.today()}, commit {git_commit()}; machine: {machine_description()}"
    runner = Runner()
    if args.scaling:
        tables = scaling_tables(args, runner)
        rows = [r for t in tables.values() for r in t]
    else:
        rows = default_table(args, runner)
    first = next((r for r in rows if "jax" in r), {})
    peaks = "; ".join(
        f"{dtype} peak {p['peak_flops'] / 1e9:,.0f} GFLOP/s ({p['peak_source']}"
        f"{', simulated devices' if simulated else ''})"
        for (dtype, simulated), p in runner.peaks.items()
    )
    print(
        f"\n{header}; {first.get('device', '?')} ({first.get('backend', '?')}), "
        f"jax {first.get('jax', '?')}; {peaks}"
    )
    if args.scaling:
        growth = ["case", "data", "prepare_s", "step_s", "epoch_s", "params", "host_peak_mib"]
        titles = {
            "devices": ("Throughput vs simulated devices (ml-100k)", TABLE),
            "interactions": ("xDeepFM vs log size (10,000 items)", growth),
            "items": ("Catalogue size (6,040 users, 1M interactions)", growth),
        }
        for sweep, table in tables.items():
            print_table(titles[sweep][0], table, titles[sweep][1])
    else:
        print_table("Throughput", rows, TABLE)
    failed = [r for r in rows if str(r.get("note", "")).startswith("failed")]
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"header": header, "rows": rows}, f, indent=2)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
