"""Evaluation: metrics, protocols (the study's, full ranking, leave-one-out, CTR, data-set
size), and the run folder with curves, plots and tables that `evaluate.py` writes.

`run(config, workdir)` is the entry point of `evaluate.py`.
"""

from shortrec_jax.evaluation.protocols import PROTOCOLS
from shortrec_jax.evaluation.repeats import MethodFactory
from shortrec_jax.evaluation.runner import run

__all__ = ["PROTOCOLS", "MethodFactory", "run"]
