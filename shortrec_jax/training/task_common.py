"""What every training task shares: the configured data split and the model's config.

`load_split` loads and splits `config.data`; `model_config` builds the model's config
dataclass from `config.model`; `padded_rows` rounds a table's rows up for the "model" mesh
axis.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ml_collections import ConfigDict

from shortrec_jax.config_files import dataclass_from_mapping
from shortrec_jax.data.side_files import load_configured
from shortrec_jax.data.splits import SPLITS, Split, subsample
from shortrec_jax.models import get_model

# A split protocol's config name -> the options it takes from config.data.
_SPLIT_OPTIONS = {
    "random": ("fractions", "seed"),
    "per_user_random": ("fractions", "seed"),
    "temporal": ("fractions",),
    "leave_one_out": (),
}


def load_split(config: ConfigDict) -> Split:
    """Loads `config.data.source` and splits it by `config.data.split`, seeded by config.seed."""
    data = config.data
    if data.split not in SPLITS:
        raise ValueError(f"data.split={data.split!r} is not one of {sorted(SPLITS)}")
    options = {"fractions": tuple(data.fractions), "seed": config.seed}
    ds = load_configured(data)
    if data.subsample < 1.0:
        ds = subsample(ds, data.subsample, seed=config.seed)
    return SPLITS[data.split](ds, **{k: options[k] for k in _SPLIT_OPTIONS[data.split]})


def task_split(config: ConfigDict, split: Split | None, no_valid: str) -> Split:
    """A task's data: `split` when given, else `load_split(config)`; a split without a
    validation part (early stopping, the best checkpoint) raises ValueError(`no_valid`)."""
    split = split if split is not None else load_split(config)
    if split.valid is None:
        raise ValueError(no_valid)
    return split


def model_config(config: ConfigDict, **fixed: Any) -> Any:
    """The model's frozen config dataclass from `config.model` (name dropped), plus `fixed`.

    Unknown keys are an error naming them, so a misspelt field is never silently ignored;
    so are the fields the task sets itself (`fixed`: spec, num_items, max_len).
    """
    entry = get_model(config.model.name)
    defaults = {f.name: f.default for f in dataclasses.fields(entry.config)}
    # ConfigDict fields cannot switch between None and a string, so "" stands for None.
    values = {
        k: None if v == "" and defaults.get(k) is None else v
        for k, v in config.model.to_dict().items()
        if k != "name"
    }
    return dataclass_from_mapping(entry.config, values, "model", **fixed)


def padded_rows(rows: int, multiple: int) -> int:
    """`rows` rounded up to a multiple of `multiple` (rows of a table split over devices)."""
    return -(-rows // multiple) * multiple
