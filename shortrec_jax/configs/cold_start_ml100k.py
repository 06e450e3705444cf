"""Cold start for new items on MovieLens 100K: xDeepFM with content vectors vs ids only.

What it is for: the study's claim for its keyframe vectors (section 2.1.4): content features
in the embedding layer let the model rank videos it has never seen. 20% of the movies are held
out of training entirely (every interaction with them is the test set); xDeepFM trains on the
rest as "ids" (user and item ids only), "features" (the default fields) and "content" (the
default fields plus a 52-d content vector per movie: genres, year and TransE embeddings of
the Freebase knowledge graph). Reported: AUC of "rating >= 4" on the new movies' interactions
(chance 0.5) and per-user AUC, mean ± std over the repeats.

What it should show: "ids" near chance on new items (a new item is the reserved unknown id);
"content" clearly above both chance and "ids". The README has the measured table.

Time on 2 CPU cores: about a minute per variant and repeat; 3 repeats about 10 minutes.

Launch:
  python -m shortrec_jax.evaluation.cold_start --config=configs/cold_start_ml100k.py \
      --workdir=runs/cold_start_ml100k
"""

from ml_collections import ConfigDict

from shortrec_jax.configs import common


def get_config() -> ConfigDict:
    config = ConfigDict()
    # Repeat r holds out items with seed + r and trains with that seed.
    config.seed = 2020
    config.repeats = 3
    config.data = common.data()
    # Share of the items held out of training entirely.
    config.held_out_fraction = 0.2
    # The xDeepFM training config the variants start from.
    config.train_config = "configs/xdeepfm_ml100k.py"
    # Fields set on that config, as a nested dict (e.g. {"train": {"num_epochs": 3}}).
    config.train_overrides = ConfigDict()
    config.variants = ("ids", "features", "content")
    config.content = ConfigDict()
    # What the content vector is made of (shortrec_jax.features.content).
    config.content.parts = ("genres", "year", "kg")
    return config
