"""What keeps a run directory safe: one writer at a time, clean stops, room to write.

- `RunLock`: an exclusive `flock` on `<workdir>/.lock`, held for the whole run. A second run
  on the same directory is refused with the holder's pid; the kernel drops the lock when its
  process dies, even by SIGKILL, so a crashed run never blocks its own resumption.
- `StopSignals`: SIGINT and SIGTERM set a flag instead of killing the process; the loop saves
  a checkpoint at the current step and stops (`TrainingInterrupted`). A second signal of the
  same kind stops at once, with the default behaviour.
- `check_writable`: fails before training when the run directory cannot be written or the
  disk lacks room for the checkpoints.
- `one_line_background_errors`: Orbax's background threads log each failed write with its
  traceback (hundreds of lines when the disk fills); the loop reports the cause in one line.
- `StartUndo`: a start that fails before it saved any checkpoint in a new (or empty) run
  directory removes what it wrote there, so the corrected command starts cleanly.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import shutil
import signal
import tempfile
import threading
from pathlib import Path
from types import FrameType, TracebackType


class RunDirectoryError(RuntimeError):
    """The run directory cannot be used: locked by another run, unwritable or full."""


class TrainingInterrupted(RuntimeError):
    """Training stopped on SIGINT/SIGTERM after saving; the same command resumes it.

    Attributes:
      signal_name: "SIGINT" or "SIGTERM".
    """

    def __init__(self, message: str, signal_name: str) -> None:
        super().__init__(message)
        self.signal_name = signal_name


class RunLock:
    """An exclusive lock on a run directory (see the module docstring)."""

    def __init__(self, workdir: str | os.PathLike[str]) -> None:
        self.path = Path(workdir) / ".lock"
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise RunDirectoryError(
                    f"{self.path.parent} is in use by another training run (pid {holder}); "
                    "wait for it to finish or use another --workdir"
                ) from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class StopSignals:
    """Turns SIGINT/SIGTERM into a stop request while active (main thread only)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.received is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.received == name:
            # A second identical signal: the user insists, stop without saving.
            signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
            signal.raise_signal(signum)
        self.received = name

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


def check_writable(workdir: str | os.PathLike[str], needed_bytes: int) -> None:
    """Raises RunDirectoryError unless `workdir` can be written and has `needed_bytes` free."""
    workdir = Path(workdir)
    try:
        fd, probe = tempfile.mkstemp(dir=workdir, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise RunDirectoryError(f"cannot write to the run directory {workdir}: {e}") from None
    free = shutil.disk_usage(workdir).free
    if free < needed_bytes:
        raise RunDirectoryError(
            f"{workdir} has {free / 2**20:,.1f} MiB free; the checkpoints of this run need "
            f"about {needed_bytes / 2**20:,.1f} MiB"
        )


class StartUndo:
    """Puts a new or empty run directory back as it was when a start fails early.

    Call `arm()` once this start holds the directory's lock (a start refused by the lock owns
    nothing there) and `undo()` when the start fails: if the directory was absent or empty
    before and no checkpoint step was saved, everything in it is removed (and the directory
    itself when this start created it). A failure after the first checkpoint keeps all: the
    same command resumes from it.
    """

    def __init__(self, workdir: str | os.PathLike[str]) -> None:
        self.workdir = Path(workdir)
        self.existed = self.workdir.is_dir()
        self.fresh = not self.workdir.exists() or (self.existed and not any(self.workdir.iterdir()))
        self.armed = False

    def arm(self) -> None:
        self.armed = True

    def undo(self) -> None:
        if not (self.armed and self.fresh) or self._has_checkpoint():
            return
        for entry in list(self.workdir.iterdir()):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        if not self.existed:
            with contextlib.suppress(OSError):
                self.workdir.rmdir()

    def _has_checkpoint(self) -> bool:
        ckpt = self.workdir / "checkpoints"
        return ckpt.is_dir() and any(re.fullmatch(r"\d+", p.name) for p in ckpt.iterdir())


class _FirstLineOnly(logging.Filter):
    """Keeps a record's message and drops its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return True


def one_line_background_errors() -> None:
    """Logs errors of Orbax's writer threads and of asyncio's tasks without tracebacks.

    When the disk fills during an asynchronous save, every array's writer logs its own
    traceback and asyncio logs each failed task again at exit; the loop stops with one line
    naming the cause and the last intact checkpoint, so the tracebacks are noise.
    """
    for name in ("absl", "asyncio"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _FirstLineOnly) for f in logger.filters):
            logger.addFilter(_FirstLineOnly())
