"""Trains a model from a config file: `python train.py --config=configs/xdeepfm_ml100k.py`.

Flags:
  --config           a config file from configs/ (default: xDeepFM on the bundled ml-100k);
                     override any field with --config.train.num_epochs=3 and the like.
  --workdir          the run directory (checkpoints, metrics, results); an existing run in it
                     is resumed.

Several processes (hosts), one command per process with the same config and --workdir on a
shared file system:
  --coordinator_address  host:port of process 0 (or env JAX_COORDINATOR_ADDRESS)
  --num_processes        how many processes (or env JAX_NUM_PROCESSES); > 1 turns it on
  --process_id           this process's index, 0 .. num_processes - 1 (or env JAX_PROCESS_ID)
  --distributed          join a multi-process run whose settings JAX detects by itself
                         (Slurm, Open MPI, Cloud TPU, Kubernetes)
Each process feeds its own rows of every global batch; process 0 writes the logs and results;
checkpoints are written by all together.

The logic lives in `shortrec_jax.training.train_and_evaluate`; this file only parses flags.
"""

import os
import signal
import sys
from pathlib import Path

from absl import app, flags, logging

from shortrec_jax import cli

_CONFIG = cli.define_config(
    str(Path(__file__).parent / "configs" / "xdeepfm_ml100k.py"), "Experiment config."
)
_WORKDIR = flags.DEFINE_string("workdir", "runs/xdeepfm_ml100k", "Run directory.")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address",
    os.environ.get("JAX_COORDINATOR_ADDRESS", ""),
    "host:port of process 0 in a multi-process run.",
)
_NUM_PROCESSES = flags.DEFINE_integer(
    "num_processes", int(os.environ.get("JAX_NUM_PROCESSES", "1")), "Processes in the run."
)
_PROCESS_ID = flags.DEFINE_integer(
    "process_id", int(os.environ.get("JAX_PROCESS_ID", "0")), "This process's index."
)
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Join a multi-process run whose settings JAX detects."
)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    # Before anything touches a device: the backend is created for the whole cluster.
    from shortrec_jax.training.parallel import initialize_distributed

    if _NUM_PROCESSES.value > 1:
        if not _COORDINATOR.value:
            raise app.UsageError("--num_processes > 1 needs --coordinator_address=host:port")
        if not 0 <= _PROCESS_ID.value < _NUM_PROCESSES.value:
            raise app.UsageError(
                f"--process_id={_PROCESS_ID.value} must be in [0, {_NUM_PROCESSES.value})"
            )
        initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    elif _DISTRIBUTED.value:
        initialize_distributed(_COORDINATOR.value or None)

    from shortrec_jax.training.checkpoint import CheckpointError
    from shortrec_jax.training.config_checks import ConfigError
    from shortrec_jax.training.epoch import TrainingError
    from shortrec_jax.training.guards import (
        RunDirectoryError,
        TrainingInterrupted,
        one_line_background_errors,
    )
    from shortrec_jax.training.loop import train_and_evaluate

    # Orbax logs every save at INFO; --verbosity=0 brings that back.
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
        one_line_background_errors()

    try:
        train_and_evaluate(_CONFIG.value, _WORKDIR.value)
    except TrainingInterrupted as e:
        print(e, file=sys.stderr)
        # The shell's convention for a process ended by a signal: 128 + its number.
        sys.exit(128 + int(signal.Signals[e.signal_name]))
    except (CheckpointError, ConfigError, RunDirectoryError, TrainingError) as e:
        # Errors the user can act on: their message is the whole report.
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    cli.run(main)
