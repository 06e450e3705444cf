"""Flax linen models and the registry that configs name them by.

`MODELS` maps a model name (the `config.model.name` of an experiment) to its hyperparameter
dataclass and its module: `entry = MODELS["xdeepfm"]; model = entry.module(entry.config(...))`.
Add a model by adding a literal entry.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn

from shortrec_jax.models.bert4rec import BERT4Rec, BERT4RecConfig
from shortrec_jax.models.sasrec import SASRec, SASRecConfig
from shortrec_jax.models.xdeepfm import WideAndDeep, WideAndDeepConfig, XDeepFM, XDeepFMConfig


class ModelEntry(NamedTuple):
    """A registered model: its frozen hyperparameter dataclass and its module class, which
    takes an instance of that dataclass as its only field (`module(config)`)."""

    config: type[Any]
    module: type[nn.Module]


MODELS: dict[str, ModelEntry] = {
    "xdeepfm": ModelEntry(XDeepFMConfig, XDeepFM),
    "widedeep": ModelEntry(WideAndDeepConfig, WideAndDeep),
    "bert4rec": ModelEntry(BERT4RecConfig, BERT4Rec),
    "sasrec": ModelEntry(SASRecConfig, SASRec),
}


def get_model(name: str) -> ModelEntry:
    """The registry entry for `name`; ValueError listing the known names otherwise."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {sorted(MODELS)}")
    return MODELS[name]
