"""Host-side batches of NumPy arrays: fixed shapes, every example exactly once, prefetching.

`batches` cuts a dict of equally long arrays into global batches of one size. The last partial
batch is padded to the full size by repeating its first row with weight 0, so that every batch
of a run has the same shapes (a jit-compiled step never recompiles) and every example counts
exactly once in sums weighted by "weight" (losses and metrics are sums and counts, divided once
on the host). The global batch is what the data-parallel step splits over `num_shards`
devices; it must divide evenly. In a multi-process run every process draws the same global
batches and keeps only the rows its own devices hold (`process_rows`), so the processes
together see each global batch exactly once.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from typing import Generic, TypeVar

import numpy as np

# `epoch_rng` stream of the batch order (cloze masks use another, see sequences.py).
SHUFFLE_STREAM = 0

T = TypeVar("T")


def epoch_rng(seed: int, epoch: int, stream: int) -> np.random.Generator:
    """A generator for one use in one epoch: the same for the same (seed, epoch, stream).

    Different streams give independent generators, so the batch order and, say, the cloze
    masks of an epoch do not share random numbers.

    Args:
      seed: the run's seed, >= 0.
      epoch: the epoch, >= 0.
      stream: which use, >= 0 (SHUFFLE_STREAM, sequences.CLOZE_STREAM, ...).
    """
    if min(seed, epoch, stream) < 0:
        raise ValueError(f"seed, epoch and stream must be >= 0, got {seed}, {epoch}, {stream}")
    return np.random.default_rng([seed, epoch, stream])


def num_batches(n: int, batch_size: int, *, drop_remainder: bool = False) -> int:
    """The number of batches `batches` yields for n examples."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return n // batch_size if drop_remainder else -(-n // batch_size)


def batches(
    arrays: Mapping[str, np.ndarray],
    batch_size: int,
    *,
    num_shards: int = 1,
    shuffle: bool,
    seed: int | None = None,
    epoch: int = 0,
    drop_remainder: bool = False,
    process_rows: slice | None = None,
) -> Iterator[dict[str, np.ndarray]]:
    """Global batches over the examples (the rows of every array), or one process's part.

    Arguments are checked on the call, before the first batch is asked for.

    Args:
      arrays: name -> [N, ...] array; e.g. an encoded CTR batch dict.
      batch_size: B, the global batch size; a multiple of `num_shards`.
      num_shards: the devices the batch is split over.
      shuffle: visit the examples in a random order, drawn from (seed, epoch) (the same
        order for the same pair, another for another epoch); else in row order.
      seed: the run's seed; required when shuffling.
      epoch: the epoch number, >= 0.
      drop_remainder: drop the last partial batch instead of padding it (its examples are
        then not seen this epoch).
      process_rows: keep only these rows of every global batch (this process's part,
        `Partitioner.process_rows`); None keeps the whole batch. Only the kept rows are
        gathered from `arrays`.

    Yields:
      name -> [B, ...] arrays (B = the kept rows), plus "weight" [B] float32: the input's
      "weight" (ones when absent) and 0 for padding rows, which repeat the global batch's
      first row. Arrays of an unshuffled full batch are views of the input.
    """
    if batch_size < 1 or num_shards < 1 or batch_size % num_shards:
        raise ValueError(
            f"batch_size={batch_size} must be a positive multiple of num_shards={num_shards}"
        )
    if not arrays:
        raise ValueError("batches needs at least one array")
    sizes = {k: (np.shape(v)[0] if np.ndim(v) else None) for k, v in arrays.items()}
    n = next(iter(sizes.values()))
    if n is None or any(s != n for s in sizes.values()):
        raise ValueError(f"arrays must share their leading dimension N, got {sizes}")
    if shuffle and seed is None:
        raise ValueError("shuffle=True needs an explicit seed")
    part = slice(0, batch_size) if process_rows is None else process_rows
    if not 0 <= part.start < part.stop <= batch_size or part.step not in (None, 1):
        raise ValueError(f"process_rows={process_rows} is not a block of [0, {batch_size})")
    order = epoch_rng(seed, epoch, SHUFFLE_STREAM).permutation(n) if shuffle else None
    return _batches(dict(arrays), n, batch_size, order, drop_remainder, part)


def _batches(
    arrays: dict[str, np.ndarray],
    n: int,
    batch_size: int,
    order: np.ndarray | None,
    drop_remainder: bool,
    part: slice,
) -> Iterator[dict[str, np.ndarray]]:
    weight = arrays.pop("weight", None)
    for b in range(num_batches(n, batch_size, drop_remainder=drop_remainder)):
        start = b * batch_size
        stop = min(start + batch_size, n)
        real = stop - start
        if order is None and real == batch_size:
            rows: slice | np.ndarray = slice(start + part.start, start + part.stop)
        else:
            rows = np.arange(start, stop) if order is None else order[start:stop]
            # Padding repeats the first row, so that it holds valid ids and finite values.
            rows = np.concatenate([rows, np.full(batch_size - real, rows[0], dtype=rows.dtype)])
            rows = rows[part]
        batch = {k: np.asarray(v[rows]) for k, v in arrays.items()}
        size = part.stop - part.start
        w = np.ones(size, np.float32) if weight is None else weight[rows].astype(np.float32)
        # Global positions at or past `real` are padding.
        w[max(real - part.start, 0) :] = 0.0
        batch["weight"] = w
        yield batch


def prefetch(iterator: Iterable[T], size: int = 2) -> Prefetcher[T]:
    """Iterates over `iterator` while a background thread prepares the next `size` items.

    Use as `for batch in prefetch(batches(...)):`; see `Prefetcher`.
    """
    return Prefetcher(iterator, size)


_END = object()


def _put(q: queue.Queue, stop: threading.Event, entry: tuple[object, BaseException | None]) -> bool:
    """Puts an entry unless the consumer has stopped; returns whether it was put."""
    while not stop.is_set():
        try:
            q.put(entry, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False


def _produce(it: Iterator[object], q: queue.Queue, stop: threading.Event) -> None:
    # The thread holds no reference to its Prefetcher, so an abandoned one is collected and
    # its __del__ stops the thread.
    try:
        for item in it:
            if not _put(q, stop, (item, None)):
                return
    except BaseException as e:  # handed to the consumer, which raises it
        _put(q, stop, (_END, e))
        return
    _put(q, stop, (_END, None))


class Prefetcher(Generic[T]):
    """An iterator over `iterator` whose next items a background thread prepares.

    The thread starts at once and stays at most `size` items ahead (a bounded queue). An
    exception raised by `iterator` is raised again by `next()` at the position where it
    happened. `close()` (or leaving a `with` block, or exhausting the items) stops the thread
    and waits for it, so a `next()` of `iterator` already under way finishes first.

    Args:
      iterator: any iterable; it is consumed only by the background thread.
      size: how many items to prepare ahead, >= 1.
    """

    def __init__(self, iterator: Iterable[T], size: int = 2) -> None:
        if size < 1:
            raise ValueError(f"prefetch size must be >= 1, got {size}")
        self._queue: queue.Queue = queue.Queue(maxsize=size)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(
            target=_produce,
            args=(iter(iterator), self._queue, self._stop),
            name="prefetch",
            daemon=True,
        )
        self._thread.start()

    def __iter__(self) -> Prefetcher[T]:
        return self

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        item, error = self._queue.get()
        if item is _END:
            self.close()
            if error is not None:
                raise error
            raise StopIteration
        return item  # type: ignore[return-value]

    def close(self) -> None:
        """Stops the background thread and waits for it; later `next()` calls stop at once."""
        self._done = True
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> Prefetcher[T]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        stop = getattr(self, "_stop", None)  # absent when __init__ failed
        if stop is not None:
            stop.set()
