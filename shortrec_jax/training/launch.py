"""Starting a training run from a program: joining a multi-process run, exit statuses.

`launch` is what train.py calls with its flags: it checks the multi-process settings, joins
the processes (before anything touches a device: the backend is created for the whole
cluster), trains, and turns an interruption into the shell's exit status.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from absl import app
from ml_collections import ConfigDict

from shortrec_jax.training.checkpoint import CheckpointError
from shortrec_jax.training.config_checks import ConfigError
from shortrec_jax.training.epoch import TrainingError
from shortrec_jax.training.guards import (
    RunDirectoryError,
    TrainingInterrupted,
    one_line_background_errors,
)
from shortrec_jax.training.loop import train_and_evaluate
from shortrec_jax.training.parallel import initialize_distributed


def join_processes(
    coordinator_address: str, num_processes: int, process_id: int, distributed: bool
) -> None:
    """Joins a multi-process run when asked to; one process alone needs nothing.

    Args:
      coordinator_address: "host:port" of process 0 ("" = let JAX detect it).
      num_processes: processes in the run; > 1 turns the explicit settings on.
      process_id: this process's index in [0, num_processes).
      distributed: join a run whose settings JAX detects (Slurm, Open MPI, Cloud TPU, ...).

    Raises:
      app.UsageError: settings that cannot work (naming the flag).
    """
    if num_processes > 1:
        if not coordinator_address:
            raise app.UsageError("--num_processes > 1 needs --coordinator_address=host:port")
        if not 0 <= process_id < num_processes:
            raise app.UsageError(f"--process_id={process_id} must be in [0, {num_processes})")
        initialize_distributed(coordinator_address, num_processes, process_id)
    elif distributed:
        initialize_distributed(coordinator_address or None)


def launch(
    config: ConfigDict,
    workdir: str | Path,
    *,
    coordinator_address: str = "",
    num_processes: int = 1,
    process_id: int = 0,
    distributed: bool = False,
    verbose: bool = False,
) -> int:
    """Joins the processes (`join_processes`), trains and evaluates; the exit status.

    Args:
      config, workdir: as `train_and_evaluate` takes them.
      coordinator_address, num_processes, process_id, distributed: see `join_processes`.
      verbose: keep Orbax's background tracebacks whole (else one line each).

    Returns:
      0 when training finished; 128 + the signal's number when SIGINT/SIGTERM stopped it
      after saving (the shell's convention for a process ended by a signal); 1 for an error
      the user can act on (a bad config, run directory or checkpoint, a diverging loss),
      whose message is the whole report. Messages go to stderr.
    """
    join_processes(coordinator_address, num_processes, process_id, distributed)
    if not verbose:
        one_line_background_errors()
    try:
        train_and_evaluate(config, workdir)
    except TrainingInterrupted as e:
        print(e, file=sys.stderr)
        return 128 + int(signal.Signals[e.signal_name])
    except (CheckpointError, ConfigError, RunDirectoryError, TrainingError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0
