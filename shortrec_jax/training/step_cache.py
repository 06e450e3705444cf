"""Compiled steps shared by the runs of one process (evaluate.py's repeats, a sweep).

`jax.jit` keeps its compilations per function object, and every run builds its steps anew
from its task, so a process that trains one model on ten splits would trace and compile the
same programs ten times (seconds each on a small CPU). `shared(key, build)` instead returns
what `build()` made for an equal key earlier in the process, so the run calls the same jitted
function, which compiles again only for shapes or shardings it has not seen. Equal shapes
across splits are the config's business (`parallel.table_rows_multiple` for the CTR tables).

A key must determine everything the built function computes: the model's pure functions
(`CTRFunctions`, which compare by the Flax module's config), the optimiser's settings and
the device layout. The last `MAX_ENTRIES` keys are kept; a key holds no data set, only the
model description and the compiled programs.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")

#: Keys kept (least recently used dropped first). Three per run shape (init, train and eval
#: steps); Fig. 7 trains two models on ten training shares, each share a run length of its own,
#: in every repeat: 60 keys, which must all survive until the next repeat reuses them.
MAX_ENTRIES = 64

_entries: collections.OrderedDict[Hashable, Any] = collections.OrderedDict()
_lock = threading.Lock()


def shared(key: Hashable | None, build: Callable[[], T]) -> T:
    """What `build()` returned for an equal `key` earlier in the process, else `build()`.

    Args:
      key: a hashable that determines the built object entirely; None builds a fresh one
        and keeps nothing (a task whose steps have no such key).
      build: makes the object (e.g. a `jax.jit`-wrapped step).
    """
    if key is None:
        return build()
    with _lock:
        if key in _entries:
            _entries.move_to_end(key)
            return _entries[key]
    value = build()
    with _lock:
        value = _entries.setdefault(key, value)
        _entries.move_to_end(key)
        while len(_entries) > MAX_ENTRIES:
            _entries.popitem(last=False)
    return value


def clear() -> None:
    """Forgets every shared object (their compilations go with them)."""
    with _lock:
        _entries.clear()
