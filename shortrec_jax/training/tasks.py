"""Model families as `Task`s of the training loop: their data, loss and validation metrics.

`CTRTask` (training/ctr_task.py) trains xDeepFM and Wide & Deep on labelled (user, item)
pairs; `ClozeTask` trains BERT4Rec on item sequences, `NextItemTask` SASRec (both in
training/sequence_tasks.py); `make_task` picks the task from `config.model.name`.
"""

from __future__ import annotations

from typing import Any

from ml_collections import ConfigDict

from shortrec_jax.data.splits import Split
from shortrec_jax.models import get_model
from shortrec_jax.training.ctr_task import CTRTask
from shortrec_jax.training.sequence_tasks import ClozeTask, NextItemTask

#: A model family (`shortrec_jax.models.FAMILIES`) -> the task that trains its models
#: (`NextItemTask`, a `ClozeTask`, for the causal sequence models).
TASKS = {"ctr": CTRTask, "sequence": ClozeTask}


def make_task(config: ConfigDict, split: Split | None = None) -> Any:
    """The task of `config.model.name`'s family, on `split` or on the data the config names;
    a causal sequence model (SASRec) trains on next-item targets (`NextItemTask`), a
    bidirectional one (BERT4Rec) on cloze masks."""
    entry = get_model(config.model.name)
    if entry.family == "sequence" and entry.config.causal:
        return NextItemTask(config, split)
    return TASKS[entry.family](config, split)
