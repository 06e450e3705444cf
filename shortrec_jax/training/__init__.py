"""Training: train state, pure steps, device parallelism, Orbax checkpoints, the loop.

The entry point is `shortrec_jax.training.loop.train_and_evaluate(config, workdir)`.
"""
