"""Trains a model from a config file: `python train.py --config=configs/xdeepfm_ml100k.py`.

Flags:
  --config           a config file from configs/ (default: xDeepFM on the bundled ml-100k);
                     override any field with --config.train.num_epochs=3 and the like.
  --workdir          the run directory (checkpoints, metrics, results); an existing run in it
                     is resumed.
Several processes (hosts), one command per process with the same config and --workdir on a
shared file system (process 0 writes the logs and results; all write the checkpoints):
  --coordinator_address, --num_processes, --process_id (or the env JAX_COORDINATOR_ADDRESS,
  JAX_NUM_PROCESSES, JAX_PROCESS_ID); --distributed lets JAX detect them (Slurm, MPI, TPU).

The logic lives in `shortrec_jax.training.launch.launch`; this file only defines flags.
"""

import os

from absl import flags

from shortrec_jax import cli
from shortrec_jax.config_files import config_path

_CONFIG = cli.define_config(str(config_path("configs/xdeepfm_ml100k.py")), "Experiment config.")
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


def main() -> int:
    from shortrec_jax.training.launch import launch

    return launch(
        _CONFIG.value,
        _WORKDIR.value,
        coordinator_address=_COORDINATOR.value,
        num_processes=_NUM_PROCESSES.value,
        process_id=_PROCESS_ID.value,
        distributed=_DISTRIBUTED.value,
        verbose=flags.FLAGS["verbosity"].present,
    )


if __name__ == "__main__":
    cli.run(main)
