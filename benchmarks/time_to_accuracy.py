"""Time to accuracy, side by side in one invocation: ours against RecBole and the floors.

  python -m benchmarks.time_to_accuracy --recbole-python=PY [--layouts=auto,1]
                                        [--sequential=sasrec] [--json=FILE]
                                        [--recbole-sequential=SASRec,BERT4Rec]
                                        [--recbole-seq-minutes=20]

1. xDeepFM on the CTR task of configs/xdeepfm_ml100k.py. Ours is the default command a user
   runs, `python train.py` (fresh run directory, no other flag), once per --layouts entry:
   `auto` leaves the CPU layout to `shortrec_jax.platform`, a number N sets N CPU devices
   through XLA_FLAGS. RecBole 1.2.1's own xDeepFM (benchmarks/recbole_worker.py, with
   --recbole-python) trains on the same rows to its best validation AUC (early stopping after
   10 epochs without a better one, at most --recbole-max-epochs) and tests its best model.
   For each, the table gives:
   - to_best_s: seconds from launching the process (imports, data preparation and
     compilation included, for both) to the end of the validation that found the best
     checkpoint. The target is RecBole's test AUC (TARGET_AUC, docs/references.md; the run's
     own figure is printed beside it): ours has reached it by to_best_s when its best
     checkpoint's test AUC is at least the target (it may have earlier; test AUC is measured
     only for the best checkpoint);
   - train_examples_s: the median of ours' logged training examples/s after its first epoch,
     and for RecBole the rows of an epoch over its median training-epoch time;
   - vs_recbole: RecBole's to_best_s over this row's (how many times faster it got there),
     and speed_vs_recbole the same for examples/s.
2. Our sequential models on leave-one-out ml-100k (configs/<name>_ml100k.py for each name
   in --sequential, default sasrec; --sequential=sasrec,bert4rec for both): seconds to the
   best checkpoint and its test NDCG@10 / HR@10 against the floors of docs/references.md
   (item-CF with recency-weighted history, EASE). A config missing from this checkout is
   reported as skipped. With --recbole-python and --recbole-sequential, RecBole 1.2.1's own
   SASRec / BERT4Rec (its defaults, maximum length 50, cross-entropy) train on the same
   leave-one-out split to their best validation NDCG@10, stopped after the first validation
   past --recbole-seq-minutes of fitting (an epoch took about 3 minutes on 2 cores: they do
   not reach their best in the time ours take), and their best model is tested; vs_recbole
   is then RecBole's to_best_s over ours for the same model.
Runs go one after the other, never side by side; on a shared machine only ratios within one
invocation mean anything.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, git_commit, machine_description, print_table

# RecBole 1.2.1 xDeepFM's test AUC on this task (docs/references.md).
TARGET_AUC = 0.7804
# Leave-one-out ml-100k floors, full ranking (docs/references.md): (name, HR@10, NDCG@10).
SEQUENTIAL_FLOORS = (
    ("item-CF, recency-weighted history", 0.147, 0.080),
    ("EASE", None, 0.071),
)
_DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"


def _environment(layout: str) -> dict[str, str]:
    """The user's environment with the CPU layout `layout` ("auto" or a device count)."""
    env = dict(os.environ)
    flags = [f for f in env.get("XLA_FLAGS", "").split() if not f.startswith(_DEVICE_COUNT_FLAG)]
    if layout != "auto":
        flags.append(f"{_DEVICE_COUNT_FLAG}={int(layout)}")
    env["XLA_FLAGS"] = " ".join(flags)
    return env


def run_train(config: str | None, layout: str, workdir: Path) -> dict[str, Any]:
    """Runs `python train.py` (with --config=config when given) in a fresh `workdir`.

    Returns:
      results.json's fields plus "launched" and "finished" (time.time()), "command_s",
      and the metrics log's records ("log").
    """
    command = [sys.executable, str(ROOT / "train.py"), f"--workdir={workdir}"]
    if config:
        command.append(f"--config={config}")
    launched = time.time()
    out = subprocess.run(
        command, cwd=ROOT, env=_environment(layout), capture_output=True, text=True, check=False
    )
    finished = time.time()
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{out.stderr[-3000:]}")
    results = json.loads((workdir / "results.json").read_text())
    log_path = workdir / "metrics.jsonl"
    log = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    return {
        **results,
        "launched": launched,
        "finished": finished,
        "command_s": finished - launched,
        "log": log,
    }


def _to_best(run: dict[str, Any]) -> float:
    """Seconds from launch to the end of the validation that found the best checkpoint.

    Matched by step: with a step cadence (`train.eval_every_steps`) the best epoch is a
    fraction that need not equal the logged one to the last bit."""
    valid = [r for r in run["log"] if r["kind"] == "valid" and r["step"] == run["best_step"]]
    if not valid:
        raise RuntimeError(f"no validation record at the best step {run['best_step']}")
    return valid[-1]["time"] - run["launched"]


def _median_speed(run: dict[str, Any]) -> float | None:
    """The median logged training examples/s after the first epoch (compilation excluded)."""
    speeds = [
        r["examples_per_second"] for r in run["log"] if r["kind"] == "train" and r["epoch"] > 1
    ]
    return statistics.median(speeds) if speeds else None


def xdeepfm_rows(
    layouts: list[str], recbole_python: str, recbole_epochs: int, tmp: Path
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for layout in layouts:
        print(f"... python train.py, layout {layout}", file=sys.stderr, flush=True)
        run = run_train(None, layout, tmp / f"xdeepfm-{layout}")
        auc = run["test"]["auc"]
        rows.append(
            {
                "run": f"shortrec-jax `python train.py`, layout {layout}",
                "test_auc": auc,
                "reached_target": auc >= TARGET_AUC,
                "best_epoch": run["best_epoch"],
                "epochs": run["epochs"],
                "to_best_s": _to_best(run),
                "command_s": run["command_s"],
                "train_examples_s": _median_speed(run),
            }
        )
    if recbole_python:
        from benchmarks.recbole_baseline import run_recbole

        print("... RecBole 1.2.1 xDeepFM to its best validation AUC", file=sys.stderr, flush=True)
        rb = run_recbole(recbole_python, "xDeepFM", epochs=recbole_epochs, fit=True)
        baseline = {
            "run": f"RecBole 1.2.1 xDeepFM (torch, {rb['threads']} threads)",
            "test_auc": rb["test_auc"],
            "reached_target": rb["test_auc"] >= TARGET_AUC,
            "best_epoch": rb["best_epoch"],
            "epochs": len(rb["validations"]),
            "to_best_s": rb["best_time"] - rb["launched"],
            "command_s": rb["finished"] - rb["launched"],
            "train_examples_s": rb["rows"] / statistics.median(rb["train_epoch_seconds"]),
        }
        for row in rows:
            row["vs_recbole"] = baseline["to_best_s"] / row["to_best_s"]
            if row["train_examples_s"]:
                row["speed_vs_recbole"] = row["train_examples_s"] / baseline["train_examples_s"]
        rows.append({**baseline, "vs_recbole": 1.0, "speed_vs_recbole": 1.0})
    return rows


def _floors_cleared(ndcg: float, hr: float) -> str:
    """The note naming the leave-one-out floors a test NDCG@10 / HR@10 clears."""
    cleared = [
        floor
        for floor, floor_hr, floor_ndcg in SEQUENTIAL_FLOORS
        if ndcg >= floor_ndcg and (floor_hr is None or hr >= floor_hr)
    ]
    return "beats " + (", ".join(cleared) if cleared else "no floor")


def sequential_rows(
    names: list[str],
    tmp: Path,
    recbole_python: str = "",
    recbole_models: list[str] | None = None,
    recbole_epochs: int = 300,
    recbole_minutes: float = 20.0,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name in names:
        config = ROOT / "configs" / f"{name}_ml100k.py"
        if not config.exists():
            rows.append({"run": name, "note": f"skipped: {config.relative_to(ROOT)} is absent"})
            continue
        print(f"... python train.py --config={config.name}", file=sys.stderr, flush=True)
        run = run_train(str(config), "auto", tmp / name)
        ndcg, hr = run["test"]["ndcg@10"], run["test"]["hr@10"]
        rows.append(
            {
                "model": name,
                "run": f"`python train.py --config=configs/{config.name}`",
                "test_ndcg@10": ndcg,
                "test_hr@10": hr,
                "best_epoch": run["best_epoch"],
                "epochs": run["epochs"],
                "to_best_s": _to_best(run),
                "command_s": run["command_s"],
                "note": _floors_cleared(ndcg, hr),
            }
        )
    if not recbole_python:
        return rows
    from benchmarks.recbole_baseline import run_recbole

    for model in recbole_models or []:
        print(f"... RecBole 1.2.1 {model}, leave-one-out", file=sys.stderr, flush=True)
        rb = run_recbole(
            recbole_python, model, epochs=recbole_epochs, fit=True, minutes=recbole_minutes
        )
        to_best = rb["best_time"] - rb["launched"]
        capped = f"; stopped at the {recbole_minutes:g}-minute cap" if rb["capped"] else ""
        for row in rows:
            if row.get("model") == model.lower():
                row["vs_recbole"] = to_best / row["to_best_s"]
        rows.append(
            {
                "model": model.lower(),
                "run": f"RecBole 1.2.1 {model} (torch, {rb['threads']} threads)",
                "test_ndcg@10": rb["test_ndcg@10"],
                "test_hr@10": rb["test_hr@10"],
                "best_epoch": rb["best_epoch"],
                "epochs": len(rb["validations"]),
                "to_best_s": to_best,
                "vs_recbole": 1.0,
                "command_s": rb["finished"] - rb["launched"],
                "note": _floors_cleared(rb["test_ndcg@10"], rb["test_hr@10"]) + capped,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recbole-python", default="", help="a Python with recbole installed")
    parser.add_argument("--layouts", default="auto", help="CPU layouts of ours: auto, or N")
    parser.add_argument(
        "--recbole-max-epochs", type=int, default=300, help="RecBole's epochs (its default 300)"
    )
    parser.add_argument("--sequential", default="sasrec", help="sequential configs ('' = none)")
    parser.add_argument(
        "--recbole-sequential",
        default="",
        help="RecBole's sequential models to run too, e.g. SASRec,BERT4Rec ('' = none)",
    )
    parser.add_argument(
        "--recbole-seq-minutes",
        type=float,
        default=20.0,
        help="stop RecBole's sequential models after the first validation past this",
    )
    parser.add_argument("--json", default="", help="also write every row to this JSON file")
    args = parser.parse_args()
    layouts = [x for x in args.layouts.split(",") if x]
    bad = [x for x in layouts if x != "auto" and not x.isdigit()]
    if bad:
        parser.error(f"--layouts takes 'auto' or device counts, got {bad}")
    from benchmarks.recbole_baseline import SEQUENTIAL_MODELS

    recbole_models = [x for x in args.recbole_sequential.split(",") if x]
    unknown = [x for x in recbole_models if x not in SEQUENTIAL_MODELS]
    if unknown:
        parser.error(f"--recbole-sequential takes some of {SEQUENTIAL_MODELS}, got {unknown}")
    header = f"{datetime.date.today()}, commit {git_commit()}; machine: {machine_description()}"
    print(header, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        ctr = xdeepfm_rows(layouts, args.recbole_python, args.recbole_max_epochs, Path(tmp))
        seq = sequential_rows(
            [x for x in args.sequential.split(",") if x],
            Path(tmp),
            args.recbole_python,
            recbole_models,
            args.recbole_max_epochs,
            args.recbole_seq_minutes,
        )
    print(f"machine at the end: {machine_description()}")
    print_table(
        f"xDeepFM to RecBole's test AUC {TARGET_AUC} (ml-100k CTR)",
        ctr,
        [
            "run",
            "test_auc",
            "reached_target",
            "best_epoch",
            "epochs",
            "to_best_s",
            "vs_recbole",
            "command_s",
            "train_examples_s",
            "speed_vs_recbole",
        ],
    )
    if seq:
        floors = "; ".join(
            f"{name} NDCG@10 {ndcg}" + (f", HR@10 {hr}" if hr else "")
            for name, hr, ndcg in SEQUENTIAL_FLOORS
        )
        print_table(
            f"Sequential models, leave-one-out ml-100k (floors: {floors})",
            seq,
            [
                "run",
                "test_ndcg@10",
                "test_hr@10",
                "best_epoch",
                "epochs",
                "to_best_s",
                "vs_recbole",
                "command_s",
                "note",
            ],
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"header": header, "xdeepfm": ctr, "sequential": seq})
        )


if __name__ == "__main__":
    main()
