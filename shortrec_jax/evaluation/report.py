"""An evaluation run folder: results, curves, plots, a table, and the restart state.

Layout (evaluate.py --workdir=<run folder>):
  results.json             every number (each repeat and the mean and std over repeats), the
                           config, the seeds, package versions and timings
  metrics.csv              one row per method and metric (and training fraction): mean, std
  precision_at_n.csv/.png  paper protocol: precision@N against N, mean ± std (the study's Fig. 6)
  precision_vs_size.csv/.png  size protocol: precision@N against the training fraction (Fig. 7)
  results.md               a Markdown table of the headline metrics
  state.json               the finished repeats; a restarted run does not recompute them
  methods/<repeat key>/    what a method keeps for one repeat (e.g. a deep model's checkpoints)

Every file is written to a temporary name in the same folder and renamed over the old one, so
a crash never leaves a half-written file. JSON holds no NaN: an undefined value (e.g. a metric
on an empty slice) is written as null.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from shortrec_jax.io import write_atomic

# Distributions whose versions go into results.json.
_PACKAGES = (
    "shortrec-jax",
    "numpy",
    "jax",
    "jaxlib",
    "flax",
    "optax",
    "orbax-checkpoint",
    "ml-collections",
    "matplotlib",
)
_STATE_VERSION = 1


def json_ready(obj: Any) -> Any:
    """`obj` with NumPy scalars and arrays as Python values and non-finite floats as None."""
    if isinstance(obj, Mapping):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | np.ndarray):
        return [json_ready(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Writes `obj` as indented JSON (NaN -> null), atomically."""
    write_atomic(path, json.dumps(json_ready(obj), indent=2, allow_nan=False) + "\n")


class RepeatStore:
    """Finished repeats in a JSON file, so that a restarted run skips them.

    The file maps a repeat key (e.g. "paper/item-cf/seed=2020") to its fingerprint (a hash of
    everything the result depends on: protocol options, data, method config, seed) and its
    metrics. A result is returned only under the same fingerprint, so changing a method's
    hyperparameters recomputes that method and nothing else. The file is rewritten atomically
    after every repeat.

    Args:
      path: the state file (created on the first `put`).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.entries: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            try:
                state = json.loads(self.path.read_text())
            except json.JSONDecodeError as e:
                raise ValueError(f"{self.path}: not a JSON state file ({e})") from None
            if not isinstance(state, dict) or state.get("version") != _STATE_VERSION:
                raise ValueError(
                    f"{self.path}: expected a state file of version {_STATE_VERSION}; move it "
                    "away to start the run afresh"
                )
            self.entries = state["repeats"]

    def get(self, key: str, fingerprint: str) -> dict[str, float] | None:
        """The stored metrics of `key`, or None when absent or stored under another fingerprint.

        Values stored as null (undefined metrics) come back as NaN.
        """
        entry = self.entries.get(key)
        if entry is None or entry["fingerprint"] != fingerprint:
            return None
        return {k: float("nan") if v is None else v for k, v in entry["result"].items()}

    def put(self, key: str, fingerprint: str, result: Mapping[str, float]) -> None:
        """Stores `result` under `key` and rewrites the file."""
        self.entries[key] = {"fingerprint": fingerprint, "result": dict(result)}
        write_json(self.path, {"version": _STATE_VERSION, "repeats": self.entries})


def package_versions() -> dict[str, str | None]:
    """Python, the platform and the versions of the packages results depend on."""
    out: dict[str, str | None] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


# -- tables and curves ------------------------------------------------------------------------


def _summaries(results: Mapping[str, Any]) -> list[tuple[str, str | None, Mapping[str, Any]]]:
    """(method, training fraction or None, summary) for every summary in protocol results."""
    out = []
    for name, entry in results["methods"].items():
        if "fractions" in entry:
            out.extend((name, f, s) for f, s in entry["fractions"].items())
        else:
            out.append((name, None, entry))
    return out


def _csv(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([["" if v is None else v for v in json_ready(list(r))] for r in rows])
    return buf.getvalue()


def metrics_csv(results: Mapping[str, Any]) -> str:
    """method, [fraction,] metric, mean, std, repeats: one row per metric of each summary."""
    sized = results["protocol"] == "size"
    rows = []
    for name, fraction, summary in _summaries(results):
        for metric, mean in summary["mean"].items():
            row = [name, fraction] if sized else [name]
            rows.append([*row, metric, mean, summary["std"][metric], len(summary["repeats"])])
    header = ["method", "fraction"] if sized else ["method"]
    return _csv([*header, "metric", "mean", "std", "repeats"], rows)


def _precision_ns(summary: Mapping[str, Any]) -> list[int]:
    return sorted(int(k.split("@")[1]) for k in summary["mean"] if k.startswith("precision@"))


def precision_at_n_csv(results: Mapping[str, Any]) -> str:
    """The Fig. 6 curve: method, n, mean, std of precision@n."""
    rows = []
    for name, _, summary in _summaries(results):
        for n in _precision_ns(summary):
            key = f"precision@{n}"
            rows.append([name, n, summary["mean"][key], summary["std"][key]])
    return _csv(["method", "n", "mean", "std"], rows)


def precision_vs_size_csv(results: Mapping[str, Any]) -> str:
    """The Fig. 7 curves: method, fraction, n, mean, std of precision@n."""
    rows = []
    for name, fraction, summary in _summaries(results):
        for n in _precision_ns(summary):
            key = f"precision@{n}"
            rows.append([name, fraction, n, summary["mean"][key], summary["std"][key]])
    return _csv(["method", "fraction", "n", "mean", "std"], rows)


def _figure(title: str, xlabel: str, ylabel: str) -> tuple[Any, Any]:
    # Figure without pyplot: no global state, no GUI backend, PNG through Agg.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.8), layout="constrained")
    ax = fig.subplots()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return fig, ax


#: Markers of the method lines: the next one each time matplotlib's 10 colours come round.
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def method_style(index: int, name: str) -> dict[str, Any]:
    """Line style of the `index`-th method of a plot: colour C(index mod 10), and a marker that
    changes every 10 methods, so up to 80 methods get distinct lines; `random` is dashed grey."""
    if name == "random":
        return {"linestyle": "--", "color": "0.4"}
    return {"color": f"C{index % 10}", "marker": _MARKERS[(index // 10) % len(_MARKERS)]}


def _band(ax: Any, index: int, name: str, x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> None:
    (line,) = ax.plot(x, mean, label=name, markersize=3, **method_style(index, name))
    ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.15, linewidth=0)


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    return buf.getvalue()


def _values(summary: Mapping[str, Any], keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    def get(part: str, key: str) -> float:
        v = summary[part].get(key)
        return np.nan if v is None else v

    return (
        np.array([get("mean", k) for k in keys], dtype=np.float64),
        np.array([get("std", k) for k in keys], dtype=np.float64),
    )


def _splits(count: int) -> str:
    return f"{count} random split{'' if count == 1 else 's'}"


def precision_at_n_png(results: Mapping[str, Any]) -> bytes:
    """Fig. 6: precision@N against N, one line per method with a ± std band."""
    seeds = len(results["seeds"])
    fig, ax = _figure(
        f"{results['dataset']['name']}: precision of the top N held-out items ({_splits(seeds)})",
        "N (recommended items)",
        "precision@N (share rated >= threshold)",
    )
    base = []
    for index, (name, _, summary) in enumerate(_summaries(results)):
        ns = _precision_ns(summary)
        mean, std = _values(summary, [f"precision@{n}" for n in ns])
        _band(ax, index, name, np.array(ns), mean, std)
        base.append(summary["mean"].get("base_rate"))
        ax.set_xticks(ns)  # N is a count: integer ticks
    rates = [b for b in base if b is not None]
    if rates:
        ax.axhline(rates[0], color="0.6", linestyle=":", label="base rate (random order)")
    ax.legend(fontsize=8, ncols=2)
    return _png(fig)


def precision_vs_size_png(results: Mapping[str, Any], n: int) -> bytes:
    """Fig. 7: precision@n against the share of the training part used, ± std bands."""
    seeds = len(results["seeds"])
    fig, ax = _figure(
        f"{results['dataset']['name']}: precision@{n} against training data ({_splits(seeds)})",
        "share of the training part used (%)",
        f"precision@{n}",
    )
    for index, (name, entry) in enumerate(results["methods"].items()):
        fractions = sorted(entry["fractions"], key=float)
        points = [_values(entry["fractions"][f], [f"precision@{n}"]) for f in fractions]
        mean, std = (np.concatenate(v) for v in zip(*points, strict=True))
        _band(ax, index, name, 100 * np.array([float(f) for f in fractions]), mean, std)
    ax.legend(fontsize=8, ncols=2)
    return _png(fig)


def _cell(summary: Mapping[str, Any], metric: str, with_std: bool) -> str:
    """One table cell: mean ± std (or the mean alone for counts, times, a single repeat)."""
    mean, std = summary["mean"].get(metric), summary["std"].get(metric)
    if mean is None:
        return "–"
    if metric.startswith("time/"):
        return f"{mean:.1f}"
    if metric.split("/")[-1] in ("users", "pairs"):
        return f"{mean:.4g}"
    if not with_std or std is None:
        return f"{mean:.3f}"
    return f"{mean:.3f} ± {std:.3f}"


def markdown_table(
    results: Mapping[str, Any], columns: Sequence[str], size_n: int | None = None
) -> str:
    """A Markdown table: one row per method, mean ± std over repeats.

    Args:
      results: a protocol's results.
      columns: the metrics to show (absent ones show "–"); for the size protocol the columns
        are the training fractions instead and the cells precision@`size_n`.
      size_n: the size protocol's list length.
    """
    data, seeds = results["dataset"], results["seeds"]
    repeats = f"{len(seeds)} repeats (seeds {', '.join(str(s) for s in seeds)}); mean ± std"
    if len(seeds) == 1:
        repeats = f"1 repeat (seed {seeds[0]})"
    lines = [
        f"Protocol `{results['protocol']}` on {data['name']} ({data['interactions']:,} "
        f"interactions), {repeats}.",
        "",
    ]
    with_std = len(seeds) > 1
    if results["protocol"] == "size":
        key = f"precision@{size_n}"
        fractions = sorted(next(iter(results["methods"].values()))["fractions"], key=float)
        lines += [f"{key} by share of the training part used:", ""]
        lines.append("| method | " + " | ".join(f"{float(f):.0%}" for f in fractions) + " |")
        lines.append("| --- |" + " --- |" * len(fractions))
        for name, entry in results["methods"].items():
            cells = [_cell(entry["fractions"][f], key, with_std) for f in fractions]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    else:
        lines.append("| method | " + " | ".join(columns) + " |")
        lines.append("| --- |" + " --- |" * len(columns))
        for name, entry in results["methods"].items():
            cells = [_cell(entry, c, with_std) for c in columns]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        rates = [e["mean"].get("base_rate") for e in results["methods"].values()]
        rates = [r for r in rates if r is not None]
        if rates:
            lines += ["", f"Base rate (expected precision of a random order): {rates[0]:.3f}."]
        lines += _time_table(results)
    return "\n".join(lines) + "\n"


def _time_table(results: Mapping[str, Any]) -> list[str]:
    """Lines of a table of seconds per repeat by method: fit, scoring, and their sum."""
    rows = []
    for name, entry in results["methods"].items():
        repeats = list(entry.get("repeats", {}).values())
        if not repeats or "time/fit_seconds" not in repeats[0]:
            continue
        fit = np.array([r["time/fit_seconds"] for r in repeats])
        score = np.array([r.get("time/eval_seconds", 0.0) for r in repeats])
        cells = (fit.mean(), score.mean(), (fit + score).max(), (fit + score).sum())
        rows.append(f"| {name} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")
    if not rows:
        return []
    return [
        "",
        "Seconds per repeat (mean over repeats; the slowest repeat; all repeats together):",
        "",
        "| method | fit | scoring | slowest repeat | all repeats |",
        "| --- | --- | --- | --- | --- |",
        *rows,
    ]


def write_report(
    workdir: str | os.PathLike[str],
    results: Mapping[str, Any],
    *,
    config: Mapping[str, Any],
    columns: Sequence[str],
    size_n: int,
    timings: Mapping[str, float],
) -> list[Path]:
    """Writes results.json, the CSVs, the plots and results.md of a finished run.

    Args:
      workdir: the run folder.
      results: a protocol's results.
      config: the run's config as JSON types.
      columns: metrics of the Markdown table (see `markdown_table`).
      size_n: the list length of the size protocol's plot and table.
      timings: e.g. {"wall_seconds": ..., "compute_seconds": ...}.

    Returns:
      The files written, in order.
    """
    workdir = Path(workdir)
    files: list[tuple[str, str | bytes]] = [("metrics.csv", metrics_csv(results))]
    if results["protocol"] == "paper":
        files += [
            ("precision_at_n.csv", precision_at_n_csv(results)),
            ("precision_at_n.png", precision_at_n_png(results)),
        ]
    elif results["protocol"] == "size":
        files += [
            ("precision_vs_size.csv", precision_vs_size_csv(results)),
            ("precision_vs_size.png", precision_vs_size_png(results, size_n)),
        ]
    files.append(("results.md", markdown_table(results, columns, size_n)))
    written = []
    for name, data in files:
        write_atomic(workdir / name, data)
        written.append(workdir / name)
    document = {
        **results,
        "config": config,
        "versions": package_versions(),
        "timings": dict(timings),
        "files": [p.name for p in written],
    }
    write_json(workdir / "results.json", document)
    return [*written, workdir / "results.json"]
