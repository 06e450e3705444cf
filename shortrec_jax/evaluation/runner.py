"""`run(config, workdir)`: what `python evaluate.py` does, from an evaluate config to a run folder.

Config fields read (see configs/paper_fig6.py for a documented example):
  seed, repeats      repeat r uses seed + r (for the split, the methods, sampled negatives)
  data.source, data.source_options
                     the data set (`shortrec_jax.data.load`)
  method_names       the methods to compare, in report order; an entry may hold several
                     comma-separated names, so `--config.method_names=item-cf,random` works
  methods.<key>      each method's hyperparameters, passed whole to the method factory; the
                     key is the method's name with "-" written "_" (config keys with "-"
                     cannot be overridden from the command line): item-cf -> methods.item_cf
  protocol.name      a key of `protocols.PROTOCOLS`; the other protocol.* fields are that
                     protocol function's keyword options
  report.columns     the metrics of the Markdown table
  report.size_n      the list length N of the size protocol's plot and table
  progress_bar       show a progress bar
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ml_collections import ConfigDict

from shortrec_jax.evaluation.protocols import PROTOCOLS, protocol_keywords
from shortrec_jax.evaluation.repeats import MethodFactory
from shortrec_jax.evaluation.report import RepeatStore, write_report
from shortrec_jax.evaluation.requirements import adapt_diversity, adapt_methods
from shortrec_jax.io import write_atomic

# Arguments every protocol gets from `run` itself rather than from config.protocol.
_RUN_ARGUMENTS = ("make_method", "dataset", "methods", "seeds", "store", "workdir", "progress")


def config_key(name: str) -> str:
    """The key of a method's section in config.methods: its name with "-" as "_"."""
    return name.replace("-", "_")


def method_names(config: ConfigDict) -> list[str]:
    """The methods to run, in order (comma-separated entries split, duplicates refused)."""
    names = [n.strip() for entry in config.method_names for n in str(entry).split(",")]
    names = [n for n in names if n]
    if not names:
        raise ValueError("config.method_names is empty: name at least one method")
    if len(set(names)) != len(names):
        raise ValueError(f"config.method_names lists a method twice: {names}")
    unknown = [n for n in names if config_key(n) not in config.methods]
    if unknown:
        raise ValueError(
            f"config.method_names has {unknown} without a section in config.methods (keys "
            f"{sorted(config.methods.keys())}; a name's '-' is written '_' there)"
        )
    return names


def protocol_options(config: ConfigDict) -> tuple[str, dict[str, Any]]:
    """(protocol name, keyword options) from config.protocol, checked against the function."""
    options = config.protocol.to_dict()
    name = options.pop("name")
    if name not in PROTOCOLS:
        raise ValueError(f"config.protocol.name={name!r}; expected one of {sorted(PROTOCOLS)}")
    accepted = protocol_keywords(name) - set(_RUN_ARGUMENTS)
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ValueError(
            f"config.protocol has {unknown}, which protocol {name!r} does not take; it takes "
            f"{sorted(accepted)}"
        )
    return name, options


def run(
    config: ConfigDict, workdir: str | Path, make_method: MethodFactory | None = None
) -> dict[str, Any]:
    """Evaluates the configured methods under the configured protocol and writes the report.

    Repeats finished by an earlier run in the same `workdir` (same data, options, method
    config and seed) are read back from `workdir/state.json` instead of recomputed.

    Args:
      config: an evaluate config (see the module docstring).
      workdir: the run folder (created if needed).
      make_method: builds each repeat's method; defaults to
        `shortrec_jax.evaluation.registry.make_method` (baselines and deep models by name).

    Returns:
      The protocol's results (see `protocols`), with "files": the paths written.
    """
    from shortrec_jax.data.side_files import load_configured

    if make_method is None:
        from shortrec_jax.evaluation.registry import make_method
    workdir = Path(workdir)
    names = method_names(config)
    protocol_options(config)
    if config.repeats < 1:
        raise ValueError(f"config.repeats must be >= 1, got {config.repeats}")
    seeds = [config.seed + r for r in range(config.repeats)]
    dataset = load_configured(config.data)
    names, notes = adapt_methods(names, config.methods, dataset)
    notes += adapt_diversity(config.protocol, dataset)
    for note in notes:
        print(note, flush=True)
    protocol, options = protocol_options(config)
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results = PROTOCOLS[protocol](
        make_method,
        dataset,
        {n: config.methods[config_key(n)] for n in names},
        seeds,
        store=RepeatStore(workdir / "state.json"),
        workdir=workdir,
        progress=config.progress_bar,
        **options,
    )
    timings = {
        "wall_seconds": time.perf_counter() - started,
        "compute_seconds": _compute_seconds(results),
    }
    files = write_report(
        workdir,
        results,
        config=json.loads(config.to_json()),
        columns=list(config.report.columns),
        size_n=config.report.size_n,
        timings=timings,
    )
    if notes:
        report = workdir / "results.md"
        text = report.read_text().rstrip("\n") + "\n\n" + "".join(f"- {n}\n" for n in notes)
        write_atomic(report, text.encode())
    return {**results, "timings": timings, "files": [str(f) for f in files]}


def _compute_seconds(results: dict[str, Any]) -> float:
    """Fit + evaluation seconds summed over every repeat (also those of an earlier run)."""
    total = 0.0
    for entry in results["methods"].values():
        summaries = entry["fractions"].values() if "fractions" in entry else [entry]
        for summary in summaries:
            for repeat in summary["repeats"].values():
                total += repeat["time/fit_seconds"] + repeat["time/eval_seconds"]
    return total
