"""Training: train state, pure steps, device parallelism, Orbax checkpoints, the loop.

The entry point is `train_and_evaluate(config, workdir)`; a finished run is loaded with
`shortrec_jax.training.run.load_run` and scored through `shortrec_jax.training.scorers`.
"""

from shortrec_jax.training.loop import train_and_evaluate

__all__ = ["train_and_evaluate"]
