"""Precision against the amount of training data (the study's Fig. 7).

What it is for: the study's claim that precision grows with the data set. The paper
protocol's random 80/20 split of MovieLens 100K (configs/paper_fig6.py), but every method
trains on 10%, 20%, ..., 100% of the training part (nested seeded subsamples: a larger share
keeps every rating a smaller one keeps) and is always evaluated on the same held-out 20%.
Plotted: precision@10 against the share used, mean ± std over 3 repeats; the CSV has every N.

What it should show: the neighbourhood methods and the deep models gain most from data; the
random order stays at its base rate (about 0.57) at every size.

Time on 2 CPU cores: the baselines take about 1 minute for all 10 shares and 3 repeats; the
two deep models about 10 minutes each per repeat over the 10 shares, about an hour in all.
Quicker: `--config.repeats=1` (about 20 minutes), or the baselines alone with
`--config.method_names=item-cf,user-cf,content,kg,tag-cf,pop,item-mean,random`.

Launch:
  python evaluate.py --config=configs/paper_fig7.py --workdir=runs/paper_fig7
"""

from ml_collections import ConfigDict

from shortrec_jax.configs import paper_fig6


def get_config() -> ConfigDict:
    config = paper_fig6.get_config()
    config.repeats = 3
    # The deep models train as their own configs say: paper_fig6's short recipe was chosen
    # on whole training parts, and 4 epochs of a 10% share are few steps.
    config.methods.xdeepfm.overrides = ConfigDict()
    config.methods.widedeep.overrides = ConfigDict()

    config.protocol.name = "size"
    # Shares of the training part each method trains on.
    config.protocol.train_fractions = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)

    # Plot and table: precision@10 against the share used.
    config.report.size_n = 10
    return config
