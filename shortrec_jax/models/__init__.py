"""Flax linen models and the registry that configs name them by.

`MODELS` maps a model name (the `config.model.name` of an experiment) to its hyperparameter
dataclass, its module and its family: `entry = MODELS["xdeepfm"]; model =
entry.module(entry.config(...))`. The family says what the model scores, and the layers above
key on it, one entry each: `training.tasks.TASKS` (family -> how it trains) and
`evaluation.registry.FAMILY_METHODS` (family -> the evaluation method). Add a model by adding
a literal entry here; a new family also needs a task and a method.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn

from shortrec_jax.models.bert4rec import BERT4Rec, BERT4RecConfig
from shortrec_jax.models.sasrec import SASRec, SASRecConfig
from shortrec_jax.models.xdeepfm import WideAndDeep, WideAndDeepConfig, XDeepFM, XDeepFMConfig

#: "ctr": scores encoded (user, item) feature batches; "sequence": next-item scores after a
#: history of item ids (`shortrec_jax.vocabulary.ItemVocabulary`).
FAMILIES = ("ctr", "sequence")


class ModelEntry(NamedTuple):
    """A registered model: its frozen hyperparameter dataclass, its module class, which
    takes an instance of that dataclass as its only field (`module(config)`), and its family
    (one of FAMILIES)."""

    config: type[Any]
    module: type[nn.Module]
    family: str


MODELS: dict[str, ModelEntry] = {
    "xdeepfm": ModelEntry(XDeepFMConfig, XDeepFM, "ctr"),
    "widedeep": ModelEntry(WideAndDeepConfig, WideAndDeep, "ctr"),
    "bert4rec": ModelEntry(BERT4RecConfig, BERT4Rec, "sequence"),
    "sasrec": ModelEntry(SASRecConfig, SASRec, "sequence"),
}


def get_model(name: str) -> ModelEntry:
    """The registry entry for `name`; ValueError listing the known names otherwise."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {sorted(MODELS)}")
    return MODELS[name]
