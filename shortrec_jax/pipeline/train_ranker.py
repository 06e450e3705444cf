"""Trains the ranker once and saves it into a run directory (`ranker_run.train_ranker_run`).

  python -m shortrec_jax.pipeline.train_ranker --workdir=runs/ranker_ml100k \
      [--config.data.source=ml-100k] [--config.ranker.epochs=4] [--config.seed=0]

The fields of `--config` are `ranker_run.default_config()`: the data source (every
interaction of it is trained on and served), the seed, and `pipeline/ranker.py`'s
`RankerConfig`. Serve the directory with `python -m shortrec_jax.recommend --ranker_workdir=...`
or the HTTP service.
"""

from __future__ import annotations

from absl import flags
from ml_collections import config_flags

from shortrec_jax import cli
from shortrec_jax.pipeline.ranker_run import default_config, train_ranker_run


def main() -> None:
    """Trains and saves; prints where, and the training loss per epoch."""
    values = flags.FLAGS
    ranker = train_ranker_run(values.config, values.workdir)
    losses = ", ".join(f"{x:.4f}" for x in ranker.method.losses)
    print(f"trained ranker saved to {values.workdir} (loss per epoch: {losses})")


if __name__ == "__main__":
    flags.DEFINE_string("workdir", None, "Run directory to write.", required=True)
    config_flags.DEFINE_config_dict("config", default_config(), "Data, seed and ranker fields.")
    cli.run(main)
