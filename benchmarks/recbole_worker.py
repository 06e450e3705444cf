"""Times RecBole 1.2.1's own models on the bundled ml-100k: run by a Python with recbole.

  <python-with-recbole> benchmarks/recbole_worker.py <atomic-dir> <epochs>
  <python-with-recbole> benchmarks/recbole_worker.py <atomic-dir> <max-epochs> fit
  <python-with-recbole> benchmarks/recbole_worker.py <atomic-dir> <max-epochs> seq <model> <minutes>

The first form times <epochs> xDeepFM training epochs after a warm-up one. The second trains
xDeepFM as RecBole's own `run_recbole` does (validation after every epoch, early stopping after
10 epochs without a better validation AUC, the best model restored and tested) and reports the
wall time (time.time()) at the end of every validation, so the caller can tell when the best
checkpoint was reached. The third does the same for a sequential model (SASRec or BERT4Rec,
RecBole's defaults) on leave-one-out by time with full ranking, the protocol of the
sequential rows of docs/references.md (maximum length 50, cross-entropy, validation NDCG@10),
and stops after the first validation past <minutes> of training (RecBole's epochs on ml-100k
take minutes on 2 cores), testing the best model so far.

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

#: xDeepFM on the CTR task of configs/xdeepfm_ml100k.py (RecBole's options).
CTR_OPTIONS = {
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
}
#: A sequential model on leave-one-out by time, full ranking (docs/references.md).
SEQUENTIAL_OPTIONS = {
    "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]},
    "eval_args": {
        "split": {"LS": "valid_and_test"},
        "order": "TO",
        "group_by": "user",
        "mode": "full",
    },
    "metrics": ["Hit", "NDCG", "MRR"],
    "topk": [10],
    "valid_metric": "NDCG@10",
    "loss_type": "CE",
    "train_neg_sample_args": None,
    "MAX_ITEM_LIST_LENGTH": 50,
}


def main() -> None:
    data_dir, epochs = sys.argv[1], int(sys.argv[2])
    if sys.argv[3:4] == ["seq"]:
        model, minutes = sys.argv[4], float(sys.argv[5])
        trainer, train_data, valid_data, test_data = _trainer(
            model, data_dir, epochs, SEQUENTIAL_OPTIONS
        )
        result = _timed_fit(trainer, train_data, valid_data, "ndcg@10", minutes)
        test = trainer.evaluate(test_data, load_best_model=True, show_progress=False)
        result.update({"test_ndcg@10": float(test["ndcg@10"]), "test_hr@10": float(test["hit@10"])})
        print(json.dumps(result))
        return
    trainer, train_data, valid_data, test_data = _trainer("xDeepFM", data_dir, epochs, CTR_OPTIONS)
    threads = os.cpu_count() or 1
    if sys.argv[3:] == ["fit"]:
        result = _timed_fit(trainer, train_data, valid_data, "auc")
        test = trainer.evaluate(test_data, load_best_model=True, show_progress=False)
        result.update(
            {
                "rows": len(train_data.dataset),
                "test_auc": float(test["auc"]),
                "test_logloss": float(test["logloss"]),
            }
        )
        print(json.dumps(result))
        return
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


def _trainer(model_name: str, data_dir: str, epochs: int, options: dict) -> tuple:
    """(RecBole's Trainer of `model_name`, train, valid and test data) on ml-100k in
    `data_dir`: `options`, seed 2020, early stopping after 10 epochs, CPU, torch on as many
    threads as the machine has cores."""
    # RecBole 1.2.1 restores its best model with torch.load, which torch >= 2.6 limits to
    # plain tensors by default; the file is the checkpoint this process has just written.
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.trainer import Trainer
    from recbole.utils import get_model, init_seed

    torch.set_num_threads(os.cpu_count() or 1)
    config = Config(
        model=model_name,
        dataset="ml-100k",
        config_dict={
            "data_path": data_dir,
            **options,
            "epochs": epochs,
            "seed": 2020,
            "stopping_step": 10,
            "device": "cpu",
            "use_gpu": False,
            "show_progress": False,
            "checkpoint_dir": os.path.join(data_dir, "saved"),
            "log_wandb": False,
        },
    )
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    model = get_model(model_name)(config, train_data.dataset).to(config["device"])
    return Trainer(config, model), train_data, valid_data, test_data


class _TimeUp(Exception):
    """Raised at the start of a training epoch once the time budget is spent."""


def _timed_fit(trainer, train_data, valid_data, metric: str, minutes: float = 0.0) -> dict:
    """RecBole's `fit` with the wall time (time.time()) of every validation, its `metric`
    value, and every training epoch's seconds; with minutes > 0, stopped at the first epoch
    that starts after `minutes` of fitting (the best model so far stays saved)."""
    validations, train_seconds = [], []
    valid_epoch, train_epoch = trainer._valid_epoch, trainer._train_epoch
    started = time.time()

    def timed_train_epoch(*args, **kwargs):
        # Checked at the start of an epoch, so the last validation's best model is saved.
        if minutes > 0 and validations and time.time() - started > minutes * 60:
            raise _TimeUp
        begin = time.perf_counter()
        loss = train_epoch(*args, **kwargs)
        train_seconds.append(time.perf_counter() - begin)
        return loss

    def timed_valid_epoch(*args, **kwargs):
        score, result = valid_epoch(*args, **kwargs)
        validations.append({"time": time.time(), metric: float(score)})
        return score, result

    trainer._valid_epoch = timed_valid_epoch
    trainer._train_epoch = timed_train_epoch
    capped = False
    try:
        trainer.fit(train_data, valid_data, saved=True, show_progress=False)
    except _TimeUp:
        capped = True
    trained = time.time()
    best = max(range(len(validations)), key=lambda i: validations[i][metric])
    return {
        "threads": os.cpu_count() or 1,
        "fit_started": started,
        "fit_seconds": trained - started,
        "capped": capped,
        "validations": validations,
        "train_epoch_seconds": train_seconds,
        "best_epoch": best + 1,
        "best_time": validations[best]["time"],
    }


if __name__ == "__main__":
    main()
