"""Trains a model from a config file: `python train.py --config=configs/xdeepfm_ml100k.py`.

Flags:
  --config           a config file from configs/ (default: xDeepFM on the bundled ml-100k);
                     override any field with --config.train.num_epochs=3 and the like.
  --workdir          the run directory (checkpoints, metrics, results); an existing run in it
                     is resumed.

The logic lives in `shortrec_jax.training.train_and_evaluate`; this file only parses flags.
"""

import signal
import sys
from pathlib import Path

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", str(Path(__file__).parent / "configs" / "xdeepfm_ml100k.py"), "Experiment config."
)
_WORKDIR = flags.DEFINE_string("workdir", "runs/xdeepfm_ml100k", "Run directory.")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from shortrec_jax.training.guards import TrainingInterrupted
    from shortrec_jax.training.loop import train_and_evaluate

    # Orbax logs every save at INFO; --verbosity=0 brings that back.
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)

    try:
        train_and_evaluate(_CONFIG.value, _WORKDIR.value)
    except TrainingInterrupted as e:
        print(e, file=sys.stderr)
        # The shell's convention for a process ended by a signal: 128 + its number.
        sys.exit(128 + int(signal.Signals[e.signal_name]))


if __name__ == "__main__":
    app.run(main)
