"""The CPU layout a run gets when the user has not chosen one: call before JAX starts.

XLA's CPU backend runs many of the small operations of one device on one thread, so on a
multi-core machine one CPU device leaves cores idle. `configure_cpu` therefore splits the CPU
into one device per usable core (`jax_num_cpu_devices`, rounded down to a power of two), and
the trainer's data-parallel step runs one slice of every batch on each (benchmarks/RESULTS.md
has the measurement that chose this). It also keeps freed host memory in glibc's heap
(`mallopt`), so that the large temporary buffers of every step are not unmapped and faulted
in again each time.

Nothing is changed where the user has chosen: a device count in XLA_FLAGS
(--xla_force_host_platform_device_count=N) or in JAX_NUM_CPU_DEVICES, or JAX_PLATFORMS
without "cpu". On a machine with a GPU or TPU, JAX's devices are the accelerators; the CPU
count set here only concerns its CPU backend, which the run does not use.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from collections.abc import Mapping

DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS reports one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def cpu_device_count(environ: Mapping[str, str], cores: int) -> int | None:
    """The CPU device count to set, or None where the user chose or the CPU is not used.

    One device per core, rounded down to a power of two (6 cores: 4 devices), since the
    global batch must split evenly over the devices.

    Args:
      environ: the process environment (XLA_FLAGS, JAX_NUM_CPU_DEVICES, JAX_PLATFORMS).
      cores: usable CPU cores.
    """
    if DEVICE_COUNT_FLAG in environ.get("XLA_FLAGS", ""):
        return None
    if environ.get("JAX_NUM_CPU_DEVICES", "").strip():
        return None
    platforms = environ.get("JAX_PLATFORMS", "").strip()
    if platforms and "cpu" not in platforms.split(","):
        return None
    # A power of two, so that the batch sizes of the configs (powers of two) divide evenly.
    return 1 << (max(cores, 1).bit_length() - 1)


def keep_freed_memory() -> bool:
    """Asks glibc to keep freed memory for reuse instead of returning it to the kernel.

    glibc serves large requests (XLA's per-step temporaries: tens of MB) with fresh mappings
    that it unmaps when they are freed, so every step faults every page in again (minor page
    faults and kernel time: 52,000 faults and a third of the CPU time in the kernel per
    default xDeepFM step). Here every thread allocates from the main heap (one arena: the
    heaps of other threads' arenas are mappings of at most 64 MiB, which larger requests
    bypass), without mappings, and the heap is not trimmed, so the same pages serve step after
    step. The price: the process keeps its peak heap size. Call it before threads allocate.

    Returns:
      Whether it was applied (False on a C library without glibc's mallopt).
    """
    name = ctypes.util.find_library("c")
    if not name or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = [
        mallopt(_M_ARENA_MAX, 1),
        mallopt(_M_MMAP_MAX, 0),
        mallopt(_M_TRIM_THRESHOLD, 2**31 - 1),
    ]
    return all(done)


def configure_cpu(environ: Mapping[str, str] | None = None) -> str:
    """Chooses the CPU layout of this process; call it before JAX creates its backends.

    Returns:
      One line saying what was chosen (or why nothing was).
    """
    environ = os.environ if environ is None else environ
    count = cpu_device_count(environ, usable_cores())
    if count is None:
        return "CPU layout left as set by XLA_FLAGS / JAX_NUM_CPU_DEVICES / JAX_PLATFORMS"
    import jax

    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError as e:  # the backends already exist: too late to change them
        return f"CPU layout unchanged: {e}"
    kept = keep_freed_memory()
    return f"{count} CPU device(s) for {usable_cores()} core(s)" + (
        ", freed memory kept" if kept else ""
    )
