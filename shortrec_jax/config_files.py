"""Config files and typed settings: loading `configs/*.py`, overrides, mapping -> dataclass.

A config file is found by its path (absolute, or relative to the working directory) or, when
no such file exists, by its name in the installed package: "configs/xdeepfm_ml100k.py" and
"xdeepfm_ml100k.py" both name `shortrec_jax/configs/xdeepfm_ml100k.py`, so a non-editable
install run from any folder finds the configs the evaluation configs refer to.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ml_collections import ConfigDict

#: The packaged configs (the repository's top-level `configs` points here).
CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def config_path(path: str | Path) -> Path:
    """The config file `path` names: the file itself, else the packaged one of that name.

    Raises:
      FileNotFoundError: neither exists (naming both places looked at).
    """
    path = Path(path)
    if path.exists():
        return path
    parts = path.parts[1:] if path.parts[:1] == ("configs",) else path.parts
    packaged = CONFIG_DIR.joinpath(*parts)
    if not path.is_absolute() and packaged.exists():
        return packaged
    raise FileNotFoundError(f"no config file {path} (nor {packaged})")


def load_config_file(path: str | Path) -> ConfigDict:
    """Calls `get_config()` of a config file (see `config_path` for how it is found)."""
    path = config_path(path)
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


def dotted_fields(tree: Mapping[str, Any] | ConfigDict, prefix: str = "") -> dict[str, Any]:
    """The leaves of a nested config (a ConfigDict or its JSON dict) by dotted path:
    {"train": {"lr": 0.1}} -> {"train.lr": 0.1}."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping | ConfigDict):
            out.update(dotted_fields(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def check_fields(
    cls: type, keys: Iterable[str], where: str, *, reserved: Iterable[str] = ()
) -> None:
    """Raises ValueError naming the keys dataclass `cls` has no field for.

    Args:
      cls: a dataclass.
      keys: the given keys.
      where: the config section, for the message (e.g. "model", "methods.item-cf").
      reserved: fields the caller sets itself, refused like unknown ones.
    """
    known = {f.name for f in dataclasses.fields(cls)} - set(reserved)
    unknown = sorted(set(keys) - known)
    if unknown:
        raise ValueError(f"{where}: unknown fields {unknown}; {cls.__name__} has {sorted(known)}")


def dataclass_from_mapping(cls: type, values: Mapping[str, Any], where: str, **fixed: Any) -> Any:
    """An instance of dataclass `cls` from a config mapping, refusing unknown keys.

    Lists become tuples (ConfigDict and JSON hold sequences as lists; frozen dataclasses
    hold tuples).

    Args:
      cls: a dataclass.
      values: field name -> value.
      where: the config section, for the message.
      **fixed: fields the caller sets itself; the mapping may not set them.
    """
    check_fields(cls, values, where, reserved=fixed)
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return cls(**kwargs, **fixed)
