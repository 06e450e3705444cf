"""`make_method`: every method evaluate.py knows, deep and traditional, by name.

The traditional methods take their hyperparameters as keyword arguments, None included
(ItemCF's k=None means every neighbour, not the default 30). The deep methods take
`train_config`, a training config file (a path, or a packaged name such as
"configs/xdeepfm_ml100k.py": see `shortrec_jax.config_files.config_path`), and optional
`overrides`, a nested dict applied on top of it; they are trained on each repeat's split by
the project's trainer. A CTR model's `example_budget` and `max_epochs` set its epochs by the
size of the part it is fitted on (`budget.BudgetedCTRMethod`, the size protocol's recipe).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ml_collections import ConfigDict

from shortrec_jax.baselines import BASELINES
from shortrec_jax.config_files import check_fields, load_config_file, merge_overrides
from shortrec_jax.evaluation.budget import BudgetedCTRMethod
from shortrec_jax.evaluation.deep import CTRMethod, SequenceMethod
from shortrec_jax.interface import Method
from shortrec_jax.models import MODELS
from shortrec_jax.pipeline.method import PIPELINE_METHODS, make_pipeline_method
from shortrec_jax.pipeline.ranker import RANKER_METHODS, make_ranker_method

#: A model family (`shortrec_jax.models.FAMILIES`) -> the method that evaluates its models.
FAMILY_METHODS = {"ctr": CTRMethod, "sequence": SequenceMethod}
#: Every registered model by name, through its family.
DEEP_METHODS = {name: FAMILY_METHODS[entry.family] for name, entry in MODELS.items()}
METHOD_NAMES = (*BASELINES, *DEEP_METHODS, *PIPELINE_METHODS, *RANKER_METHODS)


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
        # Fig. 7's example budget (`budget.BudgetedCTRMethod`); the rest are the method's own
        # keyword options (CTRMethod's refit, ...).
        budget = {k: config.pop(k) for k in ("example_budget", "max_epochs") if k in config}
        cls = DEEP_METHODS[name]
        options = set(inspect.signature(cls.__init__).parameters)
        unknown = sorted(set(config) - (options - {"self", "train_config", "workdir"}))
        if unknown:
            raise ValueError(f"methods.{name}: unknown fields {unknown}")
        train_config.seed = seed
        train_config.log.progress_bar = False
        if budget.get("example_budget") is not None:
            if cls is not CTRMethod:
                raise ValueError(f"methods.{name}.example_budget: only CTR models take one")
            return BudgetedCTRMethod(
                train_config,
                workdir,
                example_budget=int(budget["example_budget"]),
                max_epochs=int(budget.get("max_epochs") or train_config.train.num_epochs),
                **config,
            )
        return cls(train_config, workdir, **config)
    if name not in BASELINES:
        raise ValueError(f"unknown method {name!r}; expected one of {sorted(METHOD_NAMES)}")
    cls = BASELINES[name]
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}
    if dataclasses.is_dataclass(cls):
        check_fields(cls, kwargs, f"methods.{name}")
        if "seed" in {f.name for f in dataclasses.fields(cls)}:
            kwargs["seed"] = seed
    return cls(**kwargs)
