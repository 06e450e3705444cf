"""A training config checked whole before anything is written.

`train_and_evaluate` calls `validate_config` first, before the run directory is created or
locked: an impossible value stops the start with one line naming the key, and the directory
is left as it was, so the corrected command in the same directory then starts cleanly.

Each rule applies where its key exists (the CTR and sequential configs have different
fields). The model section is checked by building the model's own hyperparameter dataclass,
whose checks are the reference, with stand-ins for the sizes that come from the data.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

from ml_collections import ConfigDict

from shortrec_jax.config_files import check_fields
from shortrec_jax.data.sequences import window_jitter_spread
from shortrec_jax.data.splits import SPLITS
from shortrec_jax.models import MODELS
from shortrec_jax.schema import BatchLayout
from shortrec_jax.training.optim import OPTIMIZERS, SCHEDULES


class ConfigError(ValueError):
    """An impossible config value; the message names the key."""


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _whole(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _at_least(low: int) -> tuple[Callable[[Any], bool], str]:
    return (lambda x: _whole(x) and x >= low), f"a whole number >= {low}"


def _positive() -> tuple[Callable[[Any], bool], str]:
    return (lambda x: _number(x) and x > 0), "a finite number > 0"


def _non_negative() -> tuple[Callable[[Any], bool], str]:
    return (lambda x: _number(x) and x >= 0), "a finite number >= 0"


def _in_unit(*, open_low: bool, open_high: bool) -> tuple[Callable[[Any], bool], str]:
    def ok(x: Any) -> bool:
        if not _number(x):
            return False
        return (x > 0 if open_low else x >= 0) and (x < 1 if open_high else x <= 1)

    return ok, f"a number in {'(' if open_low else '['}0, 1{')' if open_high else ']'}"


def _one_of(choices: tuple[Any, ...]) -> tuple[Callable[[Any], bool], str]:
    return (lambda x: x in choices), f"one of {list(choices)}"


def _fractions(x: Any) -> bool:
    parts = list(x) if isinstance(x, list | tuple) else []
    return (
        len(parts) in (2, 3)
        and all(_number(p) and 0 < p <= 1 for p in parts)
        and abs(sum(parts) - 1.0) < 1e-6
    )


def _boolean() -> tuple[Callable[[Any], bool], str]:
    return (lambda x: isinstance(x, bool)), "True or False"


# key -> (check, what is expected). A key absent from a config is not checked.
RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "seed": _at_least(0),
    "data.subsample": _in_unit(open_low=True, open_high=False),
    "data.split": _one_of(tuple(sorted(SPLITS))),
    "data.fractions": (_fractions, "2 or 3 positive fractions that sum to 1"),
    "data.label_threshold": (_number, "a finite number"),
    "data.numeric_buckets": _at_least(0),
    "data.statistics_prior": _non_negative(),
    "data.statistics_buckets": _at_least(0),
    "data.history_length": _at_least(1),
    "data.max_len": _at_least(1),
    "data.window_stride": _at_least(0),
    "data.mask_prob": _in_unit(open_low=True, open_high=True),
    "data.last_item_prob": _in_unit(open_low=False, open_high=False),
    "data.mask_last_item": _boolean(),
    "data.window_jitter": _boolean(),
    "train.batch_size": _at_least(1),
    "train.num_epochs": _at_least(1),
    "train.optimizer": _one_of(OPTIMIZERS),
    "train.learning_rate": _positive(),
    "train.schedule": _one_of(SCHEDULES),
    "train.warmup_steps": _at_least(0),
    "train.final_lr_fraction": _in_unit(open_low=False, open_high=False),
    "train.l2": _non_negative(),
    "train.weight_decay": _non_negative(),
    "train.clip_norm": _non_negative(),
    "train.b1": _in_unit(open_low=False, open_high=True),
    "train.b2": _in_unit(open_low=False, open_high=True),
    "train.eps": _non_negative(),
    # 0 = no cap: logits at every position (SASRec's, where every position is a target).
    "train.max_predictions": _at_least(0),
    "train.num_negatives": _at_least(0),
    "train.negative_sampler": _one_of(("uniform", "log_uniform")),
    "train.ema_decay": _in_unit(open_low=False, open_high=True),
    "train.early_stopping_patience": _at_least(0),
    "train.eval_every_steps": _at_least(0),
    "train.log_every_steps": _at_least(1),
    "train.max_steps_in_flight": _at_least(1),
    "train.prefetch": _at_least(0),
    "eval.batch_size": _at_least(1),
    "eval.sampled_negatives": _at_least(0),
    "checkpoint.keep": _at_least(1),
    "checkpoint.async_save": _boolean(),
    "checkpoint.every_steps": _at_least(0),
    "parallel.model_axis_size": _at_least(1),
    "parallel.table_rows_multiple": _at_least(1),
    "log.tensorboard": _boolean(),
    "log.progress_bar": _boolean(),
}

# Stand-ins for the model fields a task sets from the data (shapes only; never trained).
_STAND_INS: dict[str, Any] = {
    "spec": BatchLayout(vocab_size=2, cat_fields=("user_id", "item_id")),
    "num_items": 1,
}


def validate_config(config: ConfigDict) -> None:
    """Raises ConfigError (one line naming the key) for the first impossible value.

    Args:
      config: a training config (see `configs/xdeepfm_ml100k.py`, `configs/bert4rec_ml100k.py`).
    """
    for key, (ok, expected) in RULES.items():
        found, value = _lookup(config, key)
        if found and not ok(value):
            raise ConfigError(f"config {key}={value!r} is invalid: expected {expected}")
    if "eval" in config and "ks" in config.eval:
        ks = list(config.eval.ks) if isinstance(config.eval.ks, list | tuple) else []
        if not ks or not all(_whole(k) and k >= 1 for k in ks):
            raise ConfigError(
                f"config eval.ks={config.eval.ks!r} is invalid: expected whole numbers >= 1"
            )
    _validate_windows(config)
    _validate_model(config)


def _validate_windows(config: ConfigDict) -> None:
    """Window jitter is refused where it would move no window (`window_jitter_spread` 1)."""
    found, jitter = _lookup(config, "data.window_jitter")
    if not (found and jitter):
        return
    stride, max_len = config.data.window_stride, config.data.max_len
    if stride < 1 or window_jitter_spread(max_len, stride) < 2:
        raise ConfigError(
            f"config data.window_jitter=True moves no window with data.window_stride={stride!r} "
            f"and data.max_len={max_len!r}: it needs 2 <= window_stride < max_len"
        )


def _lookup(config: ConfigDict, key: str) -> tuple[bool, Any]:
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, ConfigDict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _validate_model(config: ConfigDict) -> None:
    """Builds the model's hyperparameter dataclass; its own checks name the field."""
    if "model" not in config:
        raise ConfigError("config has no model section")
    name = config.model.get("name")
    entry = MODELS.get(name)
    if entry is None:
        raise ConfigError(
            f"config model.name={name!r} is invalid: expected one of {sorted(MODELS)}"
        )
    fields = {f.name: f for f in dataclasses.fields(entry.config)}
    values = {k: v for k, v in config.model.to_dict().items() if k != "name"}
    try:
        check_fields(entry.config, values, "config model")
    except ValueError as e:
        raise ConfigError(str(e)) from None
    # ConfigDict fields cannot switch between None and a string, so "" stands for None.
    values = {
        k: None if v == "" and fields[k].default is None else tuple(v) if isinstance(v, list) else v
        for k, v in values.items()
    }
    if "max_len" in fields and "max_len" not in values and "max_len" in config.get("data", {}):
        values["max_len"] = config.data.max_len
    stand_ins = {k: v for k, v in _STAND_INS.items() if k in fields and k not in values}
    required = {
        k
        for k, f in fields.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    if required - set(values) - set(stand_ins):
        # A size this check has no stand-in for: the task checks the model when it builds it.
        return
    try:
        entry.config(**values, **stand_ins)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"config model ({name}): {e}") from None
