"""The sequential tasks hold nothing shaped [users, items] on the host."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from configs import bert4rec_ml100k, sasrec_ml100k
from shortrec_jax.data.splits import leave_one_out
from shortrec_jax.data.synthetic import synthetic_log
from shortrec_jax.training.tasks import make_task

USERS, ITEMS = 12_000, 12_000
# Measured: 36 MB. A dense [users, items] bool array is 144 MB over every user, and over the
# 4,269 evaluated users of one part 49 MB: it alone would break this budget.
BUDGET_MB = 48


@pytest.mark.parametrize("module", [bert4rec_ml100k, sasrec_ml100k])
def test_prepare_and_one_batch_stay_far_below_a_users_x_items_array(tmp_path, module):
    split = leave_one_out(synthetic_log(USERS, ITEMS, 48_000, seed=0))
    config = module.get_config()
    config.data.max_len = 20
    config.data.window_stride = 20
    tracemalloc.start()
    try:
        task = make_task(config, split)
        task.prepare(tmp_path)  # windows, evaluation arrays and 100 sampled test negatives
        batch = next(iter(task.eval_batches("test", 256, 1)))
        next(iter(task.train_batches(0, 128, 1)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert task.num_items == ITEMS and "negatives" in task.eval["test"]
    assert task.eval["test"]["target"].size * ITEMS > BUDGET_MB * 2**20
    assert peak / 2**20 < BUDGET_MB, f"host peak {peak / 2**20:.0f} MB"
    for arrays in task.eval.values():
        for name, array in arrays.items():
            assert array.size < USERS * ITEMS / 100, (name, array.shape)
    assert batch["seen"].dtype == np.int32
