"""Wide & Deep (the study's Fig. 2) on the same task, split and features as xDeepFM.

What it is for: the ablation the study's section 2.1 implies: linear ("wide") + DNN ("deep")
without xDeepFM's Compressed Interaction Network, everything else equal (data, features,
optimiser, seed), so the CIN's contribution is the difference between the two runs.

Launch (under a minute on 2 CPU cores):
  python train.py --config=configs/widedeep_ml100k.py --workdir=runs/widedeep_ml100k
"""

from ml_collections import ConfigDict

from shortrec_jax.configs import xdeepfm_ml100k


def get_config() -> ConfigDict:
    config = xdeepfm_ml100k.get_config()
    config.model.name = "widedeep"
    config.model.use_cin = False
    # The CIN fields stay (Wide & Deep shares xDeepFM's config class) but are unused.
    return config
