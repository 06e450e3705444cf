"""`python -m shortrec_jax.features.video`: see `cli.main`."""

import sys

from shortrec_jax.features.video.cli import main

sys.exit(main())
