"""Times RecBole 1.2.1's own xDeepFM on the bundled ml-100k: run by a Python with recbole.

  <python-with-recbole> benchmarks/recbole_worker.py <atomic-dir> <epochs>

Same task as configs/xdeepfm_ml100k.py and docs/references.md: label = rating >= 4, features
user_id, item_id, age, gender, occupation, release_year, genres; random 80/10/10 split;
embedding 10, CIN [100, 100, 100] (RecBole splits it in half), MLP [128, 128, 128], dropout
0.2, batch 2048; torch on as many threads as JAX has cores. Prints one JSON line. This file
imports only RecBole and torch; the project never imports it.
"""

import json
import os
import sys
import time


def main() -> None:
    data_dir, epochs = sys.argv[1], int(sys.argv[2])
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.context_aware_recommender import xDeepFM
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    config = Config(
        model="xDeepFM",
        dataset="ml-100k",
        config_dict={
            "data_path": data_dir,
            "load_col": {
                "inter": ["user_id", "item_id", "rating", "timestamp"],
                "user": ["user_id", "age", "gender", "occupation"],
                "item": ["item_id", "release_year", "class"],
            },
            "threshold": {"rating": 4},
            "eval_args": {
                "split": {"RS": [0.8, 0.1, 0.1]},
                "order": "RO",
                "group_by": None,
                "mode": "labeled",
            },
            "metrics": ["AUC", "LogLoss"],
            "valid_metric": "AUC",
            "embedding_size": 10,
            "cin_layer_size": [100, 100, 100],
            "mlp_hidden_size": [128, 128, 128],
            "dropout_prob": 0.2,
            "reg_weight": 5e-4,
            "train_batch_size": 2048,
            "eval_batch_size": 8192,
            "epochs": epochs,
            "seed": 2020,
            "device": "cpu",
            "use_gpu": False,
            "show_progress": False,
            "checkpoint_dir": os.path.join(data_dir, "saved"),
            "log_wandb": False,
        },
    )
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, _, _ = data_preparation(config, dataset)
    model = xDeepFM(config, train_data.dataset).to(config["device"])
    trainer = Trainer(config, model)
    trainer._train_epoch(train_data, 0, show_progress=False)  # warm-up, as ours compiles
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        trainer._train_epoch(train_data, epoch, show_progress=False)
    seconds = (time.perf_counter() - started) / epochs
    rows = len(train_data.dataset)
    print(
        json.dumps(
            {
                "threads": threads,
                "rows": rows,
                "seconds_per_epoch": seconds,
                "examples_per_second": rows / seconds,
            }
        )
    )


if __name__ == "__main__":
    main()
