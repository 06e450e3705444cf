"""Shared helpers of the benchmark programs: subprocess workers, device facts, tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


_DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"


def run_worker(
    module: str,
    args: Sequence[str],
    *,
    devices: int | None = 1,
    xla_flags: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> Any:
    """Runs `python -m <module> --worker <args>` on 1 device or `devices` simulated CPU ones.

    The device count of JAX is fixed when it is imported, so each count needs its own process
    (and the calling process never starts a JAX backend itself, which on a GPU would reserve
    the memory the worker needs). With devices=1 the worker gets the machine's first device
    (a GPU where there is one). The worker prints its JSON result as its last line of
    standard output. The device count is set explicitly, so the library's automatic CPU
    layout (`shortrec_jax.platform`) does not change what is measured; devices=None leaves
    it unset, to measure that layout. `xla_flags` are added to XLA_FLAGS and `env` to the
    environment.
    """
    env = {**os.environ, **(env or {})}
    flags = [f for f in env.get("XLA_FLAGS", "").split() if not f.startswith(_DEVICE_COUNT_FLAG)]
    if devices is not None:
        flags.append(f"{_DEVICE_COUNT_FLAG}={devices}")
    if devices is not None and devices > 1:
        env["JAX_PLATFORMS"] = "cpu"
    env["XLA_FLAGS"] = " ".join([*flags, *xla_flags])
    out = subprocess.run(
        [sys.executable, "-m", module, "--worker", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def git_commit() -> str:
    """The checkout's short commit, with "+changes" when tracked files differ from it."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        # diff-index only reads (unlike `git status`, which may rewrite the index).
        changed = subprocess.run(
            ["git", "diff-index", "--quiet", "HEAD", "--"], cwd=ROOT, capture_output=True
        ).returncode
    except OSError:
        return "unknown"
    return f"{commit}+changes" if changed else commit or "unknown"


def machine_description() -> str:
    """CPU cores, memory and the load average now (a busy machine measures slower)."""
    cores = os.cpu_count() or 0
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{cores} cores, {memory:.0f} GiB, load average {load}"


def device_description() -> dict[str, Any]:
    """The JAX backend, device kind and count, JAX version."""
    import jax

    dev = jax.devices()[0]
    return {
        "backend": jax.default_backend(),
        "device": dev.device_kind,
        "devices": jax.device_count(),
        "jax": jax.__version__,
    }


# Dense bf16 / fp32 matmul peaks (FLOP/s) of accelerators we know; CPU peaks are measured.
KNOWN_PEAKS = {
    "NVIDIA H100 80GB HBM3": {"bfloat16": 989e12, "float32": 67e12},
    "NVIDIA H100": {"bfloat16": 989e12, "float32": 67e12},
    "NVIDIA H200": {"bfloat16": 989e12, "float32": 67e12},
}


def matmul_peak(dtype: str = "float32", n: int = 2048, repeats: int = 20) -> float:
    """Measured FLOP/s of an n x n matrix product on the default device (the CPU ceiling)."""
    import jax
    import jax.numpy as jnp

    a = jnp.ones((n, n), dtype)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        f(a).block_until_ready()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def device_peak(dtype: str = "float32") -> tuple[float, str]:
    """(peak FLOP/s, where it comes from): a known accelerator figure or a measured matmul."""
    import jax

    kind = jax.devices()[0].device_kind
    if kind in KNOWN_PEAKS:
        return KNOWN_PEAKS[kind][dtype], "datasheet"
    return matmul_peak(dtype), "measured matmul"


def best_time(fn: Callable[[], Any], repeats: int) -> float:
    """The fastest of `repeats` wall-clock timings of `fn()`, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def print_table(title: str, rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    """Prints rows as a Markdown table (pastes straight into RESULTS.md)."""

    def fmt(v: Any) -> str:
        if v is None:
            return ""
        if isinstance(v, int) and not isinstance(v, bool):
            return f"{v:,}"
        if isinstance(v, float):
            return f"{v:,.3g}" if abs(v) < 100 else f"{v:,.0f}"
        return str(v)

    print(f"\n### {title}\n")
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(fmt(row.get(c, "")) for c in columns) + " |")
