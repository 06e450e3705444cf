"""SASRec next-item prediction on the bundled MovieLens 100K, leave-one-out, full ranking.

What it is for: the strongest simple sequential model (Kang and McAuley, ICDM 2018) trained
with a full softmax cross-entropy (Klenitskiy and Vasilev, RecSys 2023), on the protocol of
configs/bert4rec_ml100k.py: each user's last item by time is the test target, the one before
it the validation target; every item but the user's earlier ones is ranked; HR/NDCG/MRR at
1, 5, 10, 20; the best checkpoint is chosen on validation NDCG@10.

Model: BERT4Rec's encoder and tied head (hidden 64, 2 layers, 2 heads, inner 256, dropout
0.2) with causal attention; every position of a window predicts the item after it. Windows of
50 + 1 items with stride 50 cover each user's whole training history, so every training
interaction (but each user's first) is a target exactly once per epoch. AdamW 1e-3, constant
after 20 warm-up steps; the model overfits after a few hundred steps, so validation runs often
and training stops on patience.

References (docs/references.md, same protocol and data): RecBole 1.2.1 SASRec HR@10 0.106 /
NDCG@10 0.052 after 19 minutes; item-CF with recency-weighted history 0.147 / 0.080; EASE
NDCG@10 0.071. The README gives what this config reaches.

Measured (seed 2020, 2 CPU cores shared with six other jobs, load average 11-12): best
validation NDCG@10 0.117 at step 840 (epoch 45 of 19 steps), test NDCG@10 0.100 / HR@10
0.197; 36 minutes of wall time on that loaded machine (validation reached 0.11 by step 300),
host peak 1.07 GiB. Not measured on a quiet machine.

Launch:
  python train.py --config=configs/sasrec_ml100k.py --workdir=runs/sasrec_ml100k
"""

from ml_collections import ConfigDict

from shortrec_jax.configs import bert4rec_ml100k


def get_config() -> ConfigDict:
    config = bert4rec_ml100k.get_config()
    # N, the last behaviours the model sees (the size of its position table).
    config.data.max_len = 50
    # Windows of max_len + 1 items end this many items apart: 50 covers every item once.
    config.data.window_stride = 50
    # Cloze fields, unused by SASRec (it predicts the next item at every position).
    config.data.mask_prob = 0.2
    config.data.last_item_prob = 0.0

    config.model.name = "sasrec"

    config.train.num_epochs = 60
    config.train.schedule = "constant"
    config.train.warmup_steps = 20
    # Logits at every position: each one is a target.
    config.train.max_predictions = 0
    # Validate (full ranking) every 20 steps, about an epoch of ml-100k's 19 steps; stop after
    # 6 validations without a better NDCG@10.
    config.train.eval_every_steps = 20
    config.train.early_stopping_patience = 6
    config.train.log_every_steps = 10
    return config
