"""The pipeline's stage ablation on MovieLens 100K, full-catalogue ranking.

What it is for: the README's stage-ablation table. The same recall -> ranking -> reranking
pipeline is evaluated with its stages switched on one by one ("pipeline-recall",
"pipeline-rank", "pipeline"), beside item-CF and EASE on the same splits, under the full
ranking protocol of `configs/full_ranking_ml100k.py` (per-user 80/10/10, every unrated item a
candidate, relevant = every test item). The ranking stages train xDeepFM
(`configs/xdeepfm_ml100k.py`) on each repeat's training part.

What it should reach (measured): the trained ranker ("ranker", 3 repeats) NDCG@10 0.340 ±
0.011, its recall stage alone 0.300, EASE 0.335, DLAE 0.339; the xDeepFM pipeline (seed 2020,
one repeat) recall only 0.274, + ranking 0.254, + reranking 0.251, item-CF 0.277, EASE 0.321.
The hand-set xDeepFM ranking stage costs accuracy: it was trained on rated pairs only.

Time on 2 CPU cores shared with other jobs: the trained ranker about 1.5 minutes per repeat;
the xDeepFM pipeline 22 minutes per repeat (xDeepFM trained twice).

Launch:
  python evaluate.py --config=configs/pipeline_ml100k.py --workdir=runs/pipeline_ml100k
  python evaluate.py --config=configs/pipeline_ml100k.py --config.repeats=1   # quicker
"""

from ml_collections import ConfigDict

from shortrec_jax.configs import full_ranking_ml100k


def get_config() -> ConfigDict:
    config = full_ranking_ml100k.get_config()
    config.repeats = 3
    config.method_names = (
        "item-cf",
        "ease",
        "dlae",
        "ranker-recall",
        "ranker",
        "pipeline-recall",
        "pipeline-rank",
        "pipeline",
    )
    # Recall (EASE, item-CF, user-CF, popularity, DLAE) -> a ranker trained on a held-out slice of
    # the training history (shortrec_jax/pipeline/ranker.py); "ranker-recall" is its recall
    # stage alone. Fields: those of shortrec_jax.pipeline.ranker.RankerConfig.
    config.methods.ranker = ConfigDict()
    config.methods.ranker.quota = 50
    config.methods.ranker.holdout = 0.2
    config.methods.ranker.negatives = 20
    # Three independent held-out slices; embeddings of size 1: larger id embeddings
    # memorise the held-out slices (validation NDCG@10 0.253 at 16, 0.257 at 1, one draw,
    # seed 2020).
    config.methods.ranker.draws = 3
    config.methods.ranker.embed_dim = 1
    config.methods.ranker.epochs = 4
    config.methods.ranker.loss = "listwise"
    config.methods.ranker.objective = "watch"
    config.methods.ranker_recall = ConfigDict(config.methods.ranker.to_dict())
    for name in ("pipeline_recall", "pipeline_rank", "pipeline"):
        config.methods[name] = ConfigDict()
        # xDeepFM's training config (the ranking stage; unused by recall alone).
        config.methods[name].train_config = "configs/xdeepfm_ml100k.py"
    config.report.columns = (
        "precision@10",
        "recall@10",
        "ndcg@10",
        "hr@10",
        "coverage@10",
        "diversity@10",
        "novelty@10",
        "time/fit_seconds",
    )
    return config
