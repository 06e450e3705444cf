"""Next-item prediction, leave-one-out by time, on MovieLens 100K (the sequential protocol).

What it is for: the protocol BERT4Rec is measured on. Each user's last rating by time is the
test item and the one before it the validation item; every method ranks all 1,682 items but
the user's earlier ones; HR, NDCG and MRR at 5, 10 and 20. Beside it, labelled
"sampled100_pop/...", the BERT4Rec paper's variant: the test item against 100 negatives
sampled by popularity, which runs several times higher and is not comparable with full
ranking. Also cold-user and rare-item slices and coverage, novelty, diversity, long-tail share.
The split is the same for every seed; one repeat by default.

What it should reach (docs/references.md, this protocol): popularity HR@10 0.086 / NDCG@10
0.045; item-CF on binary histories 0.108 / 0.056; RecBole's BERT4Rec after 19 minutes 0.071 /
0.034, with 100 popularity-sampled negatives HR@10 0.304 / NDCG@10 0.137. Measured here
(2026-11-30; the baselines fitted with the validation items, `protocol.valid_as_history`):
recency-cf 0.147 / 0.080, EASE 0.145 / 0.074, item-cf 0.118 / 0.064, pop 0.086 / 0.044;
SASRec 0.194 / 0.100 and BERT4Rec 0.174 / 0.088 (3 seeds each, their configs). A sequential
model that does not clearly beat the recency-weighted item-CF has learned little about order.

Time on 2 CPU cores: the baselines take seconds (8.5 s for the eight below); SASRec and
BERT4Rec train for about 2 minutes each on a quiet machine (their configs give the measured
times). The baselines alone:
`--config.method_names=recency-cf,ease,item-cf,user-cf,kg,tag-cf,pop,random`.

Launch:
  python evaluate.py --config=configs/loo_ml100k.py --workdir=runs/loo_ml100k
"""

from ml_collections import ConfigDict

from shortrec_jax.configs import common, full_ranking_ml100k, paper_fig6


def get_config() -> ConfigDict:
    config = paper_fig6.get_config()
    config.repeats = 1
    config.method_names = (
        "sasrec",
        "bert4rec",
        "recency-cf",
        "ease",
        "item-cf",
        "user-cf",
        "kg",
        "tag-cf",
        "pop",
        "random",
    )
    config.methods = full_ranking_ml100k.full_ranking_methods()
    # Item-CF with the history weighted decay**steps_back: the floor of a sequential model.
    config.methods.recency_cf = ConfigDict()
    config.methods.recency_cf.decay = 0.9
    config.methods.recency_cf.max_history = 200
    config.methods.sasrec = ConfigDict()
    config.methods.sasrec.train_config = "configs/sasrec_ml100k.py"

    config.protocol = ConfigDict()
    config.protocol.name = "leave_one_out"
    # Cut-offs K of HR, NDCG and MRR.
    config.protocol.ks = (5, 10, 20)
    # The validation item is history at test time: not a candidate.
    config.protocol.exclude_valid = True
    # ... and known to every method at test time: the methods that tune nothing on the
    # validation part (EASE, item-CF, popularity, ...) are fitted on it too.
    config.protocol.valid_as_history = True
    # Also rank against this many sampled negatives (0 = off); the BERT4Rec paper uses 100.
    config.protocol.sampled_negatives = 100
    # "popularity" (by training interactions, as the BERT4Rec paper) or "uniform".
    config.protocol.negative_sampling = "popularity"
    common.slice_options(config.protocol)

    config.report.columns = (
        "hr@10",
        "ndcg@10",
        "mrr@10",
        "hr@5",
        "ndcg@5",
        "hr@20",
        "ndcg@20",
        "sampled100_pop/hr@10",
        "sampled100_pop/ndcg@10",
        "cold_users/hr@10",
        "rare_items/hr@10",
        "coverage@10",
        "novelty@10",
        "time/fit_seconds",
    )
    return config
