"""Compares methods on shared splits: `python evaluate.py --config=configs/paper_fig6.py`.

Flags:
  --config           a config file from configs/ (default: the study's Fig. 6 comparison);
                     override any field, e.g. --config.repeats=3 or
                     --config.method_names=item-cf,pop,random.
  --workdir          the run folder: results.json, CSVs, PNG plots, results.md; repeats an
                     earlier run in it finished are not recomputed.

The logic lives in `shortrec_jax.evaluation.run`; this file only defines flags.
"""

from pathlib import Path

from absl import flags

from shortrec_jax import cli
from shortrec_jax.config_files import config_path

_CONFIG = cli.define_config(str(config_path("configs/paper_fig6.py")), "Evaluation config.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/paper_fig6", "Run folder.")


def main() -> None:
    from shortrec_jax.evaluation import run

    results = run(_CONFIG.value, _WORKDIR.value)
    print(Path(_WORKDIR.value, "results.md").read_text())
    print("Written: " + ", ".join(Path(f).name for f in results["files"]))


if __name__ == "__main__":
    cli.run(main)
