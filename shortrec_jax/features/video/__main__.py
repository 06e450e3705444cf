"""`python -m shortrec_jax.features.video`: see `cli.main`; bad input is one line (see
`shortrec_jax.cli.run_argparse`)."""

from shortrec_jax import cli
from shortrec_jax.features.video.cli import main

cli.run_argparse(main)
