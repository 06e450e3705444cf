"""Model families as `Task`s of the training loop: their data, loss and validation metrics.

`CTRTask` trains xDeepFM and Wide & Deep on labelled (user, item) pairs; `make_task` picks the
task from `config.model.name`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from ml_collections import ConfigDict

from shortrec_jax.data import load
from shortrec_jax.data.batching import batches, num_batches
from shortrec_jax.data.features import FeatureEncoder, FieldSpec
from shortrec_jax.data.splits import SPLITS, Split, subsample
from shortrec_jax.evaluation.metrics import auc, logloss
from shortrec_jax.models import MODELS

PyTree = Any

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
    ds = load(data.source, **data.source_options.to_dict())
    if data.subsample < 1.0:
        ds = subsample(ds, data.subsample, seed=config.seed)
    return SPLITS[data.split](ds, **{k: options[k] for k in _SPLIT_OPTIONS[data.split]})


def model_config(config: ConfigDict, **fixed: Any) -> Any:
    """The model's frozen config dataclass from `config.model` (name dropped), plus `fixed`.

    Unknown keys are an error naming them, so a misspelt field is never silently ignored.
    """
    entry = MODELS.get(config.model.name)
    if entry is None:
        raise ValueError(f"model.name={config.model.name!r} is not one of {sorted(MODELS)}")
    known = {f.name for f in dataclasses.fields(entry.config)}
    values = {k: v for k, v in config.model.to_dict().items() if k != "name"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"model.{unknown[0]} is not a field of {entry.config.__name__}")
    defaults = {f.name: f.default for f in dataclasses.fields(entry.config)}
    # ConfigDict fields cannot switch between None and a string, so "" stands for None.
    values = {
        k: None if v == "" and defaults.get(k) is None else tuple(v) if isinstance(v, list) else v
        for k, v in values.items()
    }
    return entry.config(**values, **fixed)


def ctr_fields(config: ConfigDict) -> list[FieldSpec]:
    """The CTR feature set declared in `config.data`: ids, user and item fields."""
    data = config.data
    fields = [FieldSpec("user_id", "categorical"), FieldSpec("item_id", "categorical")]
    fields += [FieldSpec(c, "categorical", side="user") for c in data.user_fields]
    fields += [FieldSpec(c, "categorical", side="item") for c in data.item_categorical]
    fields += [FieldSpec(c, "numeric", buckets=data.numeric_buckets) for c in data.item_numeric]
    fields += [FieldSpec(c, "multi_hot") for c in data.item_multi_hot]
    return fields


class CTRTask:
    """Click-through prediction: BCE on (user, item, label) examples; AUC and LogLoss."""

    best_metric = "auc"
    best_mode = "max"

    def __init__(self, config: ConfigDict) -> None:
        self.config = config
        self.arrays: dict[str, dict[str, np.ndarray]] = {}
        self.encoder: FeatureEncoder | None = None
        self.model: Any = None

    def prepare(self, workdir: Path) -> None:
        split = load_split(self.config)
        encoder_path = workdir / "encoders" / "features.json"
        if encoder_path.exists():
            # A resumed run keeps the vocabulary its parameters were trained with.
            self.encoder = FeatureEncoder.load(encoder_path)
        else:
            self.encoder = FeatureEncoder.fit(split.train, ctr_fields(self.config))
            if jax.process_index() == 0:
                self.encoder.save(encoder_path)
        threshold = self.config.data.label_threshold
        parts = {"train": split.train, "valid": split.valid, "test": split.test}
        for name, part in parts.items():
            if part is None:
                raise ValueError(f"the CTR task needs a {name} part; use 3 data.fractions")
            self.arrays[name] = self.encoder.encode(part, label=threshold)
        entry = MODELS[self.config.model.name]
        self.model = entry.module(model_config(self.config, spec=self.encoder.spec))

    def init_params(self, rng: jax.Array) -> PyTree:
        example = {k: v[:1] for k, v in self.arrays["train"].items()}
        return self.model.init({"params": rng}, example, train=False)["params"]

    @staticmethod
    def _sums(logits: jax.Array, batch: PyTree) -> dict[str, jax.Array]:
        losses = optax.sigmoid_binary_cross_entropy(logits, batch["label"])  # [b]
        weight = batch["weight"]
        return {"loss": jnp.sum(weight * losses), "count": jnp.sum(weight)}

    def loss_sums(
        self, params: PyTree, batch: PyTree, rng: jax.Array, train: bool
    ) -> dict[str, jax.Array]:
        logits = self.model.apply({"params": params}, batch, train=train, rngs={"dropout": rng})
        return self._sums(logits, batch)

    def steps_per_epoch(self, batch_size: int) -> int:
        return num_batches(self.arrays["train"]["label"].shape[0], batch_size)

    def train_batches(
        self, epoch: int, batch_size: int, num_shards: int
    ) -> Iterator[dict[str, np.ndarray]]:
        return batches(
            self.arrays["train"],
            batch_size,
            num_shards=num_shards,
            shuffle=True,
            seed=self.config.seed,
            epoch=epoch,
        )

    def predict(self, params: PyTree, batch: PyTree) -> tuple[jax.Array, dict[str, jax.Array]]:
        logits = self.model.apply({"params": params}, batch, train=False)
        return jax.nn.sigmoid(logits), self._sums(logits, batch)

    def eval_batches(
        self, part: str, batch_size: int, num_shards: int
    ) -> Iterator[dict[str, np.ndarray]]:
        return batches(self.arrays[part], batch_size, num_shards=num_shards, shuffle=False)

    def eval_metrics(
        self, part: str, per_example: np.ndarray, sums: dict[str, float]
    ) -> dict[str, float]:
        labels = self.arrays[part]["label"]
        return {"auc": auc(labels, per_example), "logloss": logloss(labels, per_example)}


def make_task(config: ConfigDict) -> Any:
    """The task of `config.model.name`."""
    name = config.model.name
    if name in ("xdeepfm", "widedeep"):
        return CTRTask(config)
    raise ValueError(f"model.name={name!r} has no training task; expected one of {sorted(MODELS)}")
