"""Precision against the amount of training data (the study's Fig. 7).

What it is for: the study's claim that precision grows with the data set. The paper
protocol's random 80/20 split of MovieLens 100K (configs/paper_fig6.py), but every method
trains on 10%, 20%, ..., 100% of the training part (nested seeded subsamples: a larger share
keeps every rating a smaller one keeps) and is always evaluated on the same held-out 20%.
Plotted: precision@10 against the share used, mean ± std over 3 repeats; the CSV has every N,
results.json the cold-user and rare-item slices of every share.

Where a knowledge graph should matter: `kg` chooses alpha and its relation weights on a
held-out slice of each share (validation_weights), `kg-only` is that fitted KG similarity
alone on linked pairs (alpha 1).

The deep models' recipe: paper_fig6's (batch 1,024, peak learning rate 5e-3, cosine decay,
early stopping on a 10% slice), but trained for an example budget instead of 4 epochs: every
share sees about as many training examples as 4 epochs of the whole part (4 x 72,000), i.e.
ceil(288,000 / its examples) epochs, at most 40 (a 10% share: 40 epochs of 6,480 examples).
A fixed epoch count would give a 10% share a tenth of the optimiser steps, undertraining it
rather than starving it of data (shortrec_jax/evaluation/budget.py).

Time on 2 CPU cores shared with other jobs (load average 9-10; README, Fig. 7): the
traditional methods' 3 repeats x 10 shares 8 minutes (210 CPU-seconds); the two deep models
13-22 minutes per repeat (517-563 CPU-seconds), each share costing about what the whole part
does. The full run is about 2,000 CPU-seconds. Quicker: `--config.repeats=1`, or the
baselines alone with
`--config.method_names=item-cf,item-cf-eq1,user-cf,content,kg,kg-only,tag-cf,pop,item-mean,random`.

Launch:
  python evaluate.py --config=configs/paper_fig7.py --workdir=runs/paper_fig7
"""

from ml_collections import ConfigDict

from shortrec_jax.configs import paper_fig6


def get_config() -> ConfigDict:
    config = paper_fig6.get_config()
    config.repeats = 3
    names = list(config.method_names)
    names.insert(names.index("kg") + 1, "kg-only")
    config.method_names = tuple(names)

    # The KG method (alpha and the relation weights chosen on a held-out 10% of each
    # training share, as in Fig. 6), and its KG similarity alone.
    config.methods.kg_only = ConfigDict(config.methods.kg.to_dict())
    config.methods.kg_only.alpha = 1.0
    config.methods.kg_only.alpha_grid = (1.0,)

    # xDeepFM as Wide & Deep: the plain short recipe with its own config's fields, as the
    # README's Fig. 7 numbers were measured. Fig. 6's xDeepFM with user and item statistics
    # and a history field (paper_fig6.xdeepfm_recipe, refit=True) is not yet run here.
    config.methods.xdeepfm.overrides = paper_fig6.deep_recipe()
    config.methods.xdeepfm.refit = False
    # The deep models: paper_fig6's recipe for an example budget instead of an epoch count.
    for name in ("xdeepfm", "widedeep"):
        # Training examples seen, summed over epochs: 4 epochs of the whole part's 72,000
        # (80,000 less the 10% validation slice).
        config.methods[name].example_budget = 4 * 72_000
        # The most epochs a share trains.
        config.methods[name].max_epochs = 40

    config.protocol.name = "size"
    # Shares of the training part each method trains on.
    config.protocol.train_fractions = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)

    # Plot and table: precision@10 against the share used.
    config.report.size_n = 10
    return config
