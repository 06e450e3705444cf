"""`make_method`: every method evaluate.py knows, deep and traditional, by name.

The traditional methods take their hyperparameters as keyword arguments, None included
(ItemCF's k=None means every neighbour, not the default 30). The deep methods take
`train_config`, the path of a training config file (relative to the repository root or
absolute), and optional `overrides`, a nested dict applied on top of it; they are trained on
each repeat's split by the project's trainer.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ml_collections import ConfigDict

from shortrec_jax.baselines import BASELINES
from shortrec_jax.evaluation.deep import BERT4RecMethod, CTRMethod
from shortrec_jax.interface import Method
from shortrec_jax.pipeline.method import PIPELINE_METHODS, make_pipeline_method
from shortrec_jax.pipeline.ranker import RANKER_METHODS, make_ranker_method

ROOT = Path(__file__).resolve().parents[2]
DEEP_METHODS = {
    "xdeepfm": CTRMethod,
    "widedeep": CTRMethod,
    "bert4rec": BERT4RecMethod,
    "sasrec": BERT4RecMethod,
}
METHOD_NAMES = (*BASELINES, *DEEP_METHODS, *PIPELINE_METHODS, *RANKER_METHODS)


def load_config_file(path: str | Path) -> ConfigDict:
    """Calls `get_config()` of a config file (absolute, or relative to the repository root)."""
    path = Path(path)
    if not path.is_absolute() and not path.exists():
        path = ROOT / path
    if not path.exists():
        raise FileNotFoundError(f"no config file {path}")
    spec = importlib.util.spec_from_file_location(f"_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def merge_overrides(config: ConfigDict, overrides: Mapping[str, Any], prefix: str = "") -> None:
    """Sets the fields of a nested `overrides` dict on `config`; an unknown field is an error."""
    for key, value in overrides.items():
        if key not in config:
            raise ValueError(f"override {prefix}{key} is not a field of the training config")
        if isinstance(value, Mapping):
            merge_overrides(config[key], value, f"{prefix}{key}.")
        else:
            config[key] = value


def make_method(
    name: str, config: Mapping[str, Any], *, seed: int, workdir: Path | None = None
) -> Method:
    """Builds the unfitted method `name` for one repeat.

    Args:
      name: a key of `BASELINES` or `DEEP_METHODS`.
      config: its hyperparameters (an evaluate config's `methods.<name>`).
      seed: the repeat's seed (a deep model's whole training descends from it; the random
        ranker hashes with it; the KG method's TransE starts from it).
      workdir: where a deep model writes its run directory.
    """
    config = dict(config.to_dict() if isinstance(config, ConfigDict) else config)
    if name in PIPELINE_METHODS:
        return make_pipeline_method(name, config, seed=seed, workdir=workdir)
    if name in RANKER_METHODS:
        return make_ranker_method(name, config, seed=seed)
    if name in DEEP_METHODS:
        if "train_config" not in config:
            raise ValueError(f"methods.{name} needs train_config, the path of a training config")
        train_config = load_config_file(config.pop("train_config"))
        merge_overrides(train_config, config.pop("overrides", {}) or {})
        if config:
            raise ValueError(f"methods.{name}: unknown fields {sorted(config)}")
        train_config.seed = seed
        train_config.log.progress_bar = False
        return DEEP_METHODS[name](train_config, workdir)
    if name not in BASELINES:
        raise ValueError(f"unknown method {name!r}; expected one of {sorted(METHOD_NAMES)}")
    cls = BASELINES[name]
    fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else None
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}
    if fields is not None:
        unknown = sorted(set(kwargs) - fields)
        if unknown:
            raise ValueError(f"methods.{name}: unknown fields {unknown}")
        if "seed" in fields:
            kwargs["seed"] = seed
    return cls(**kwargs)
