"""The click-through task: xDeepFM and Wide & Deep on labelled (user, item) pairs."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from ml_collections import ConfigDict

from shortrec_jax.data.auto_fields import record_fields, resolve_ctr_fields
from shortrec_jax.data.batching import batches, num_batches
from shortrec_jax.data.features import FeatureEncoder
from shortrec_jax.data.splits import Split
from shortrec_jax.metrics import auc, logloss
from shortrec_jax.models import get_model
from shortrec_jax.training.task_common import model_config, padded_rows, task_split

PyTree = Any


@dataclasses.dataclass(frozen=True)
class CTRFunctions:
    """The pure functions of a CTR model: its initialisation, loss sums, eval outputs and
    probabilities.

    They hold nothing but the Flax module, which compares and hashes by its config, so two
    runs of one model on one data layout have equal `CTRFunctions`: the key under which a
    process shares their compiled steps (`training/step_cache.py`), and which keeps no run's
    data alive.
    """

    model: Any

    def example_batch(self) -> dict[str, np.ndarray]:
        """A one-example batch of the model's layout (for init and shape checks)."""
        spec = self.model.config.spec
        nm, length = len(spec.multi_fields), spec.multi_len
        return {
            "cat": np.zeros((1, len(spec.cat_fields)), np.int32),
            "multi": np.zeros((1, nm, length), np.int32),
            "multi_mask": np.zeros((1, nm, length), np.float32),
            "num": np.zeros((1, len(spec.numeric_fields)), np.float32),
            "dense": np.zeros((1, spec.dense_width), np.float32),
            "label": np.zeros((1,), np.float32),
            "weight": np.ones((1,), np.float32),
        }

    def init_params(self, rng: jax.Array) -> PyTree:
        """Initial parameters from `rng`."""
        return self.model.init({"params": rng}, self.example_batch(), train=False)["params"]

    @staticmethod
    def _sums(logits: jax.Array, batch: PyTree) -> dict[str, jax.Array]:
        losses = optax.sigmoid_binary_cross_entropy(logits, batch["label"])  # [b]
        weight = batch["weight"]
        return {"loss": jnp.sum(weight * losses), "count": jnp.sum(weight)}

    def loss_sums(
        self, params: PyTree, batch: PyTree, rng: jax.Array, train: bool
    ) -> dict[str, jax.Array]:
        """Weighted BCE sum and weight count over one device's batch shard."""
        logits = self.model.apply({"params": params}, batch, train=train, rngs={"dropout": rng})
        return self._sums(logits, batch)

    def predict(self, params: PyTree, batch: PyTree) -> tuple[jax.Array, dict[str, jax.Array]]:
        """([b] P(positive), loss sums) of a batch shard."""
        logits = self.model.apply({"params": params}, batch, train=False)
        return jax.nn.sigmoid(logits), self._sums(logits, batch)

    def probabilities(self, params: PyTree, batch: PyTree) -> jax.Array:
        """[N] float32 P(positive) of an encoded batch (a `TrainedRun`'s predict)."""
        return jax.nn.sigmoid(self.model.apply({"params": params}, batch, train=False))


class CTRTask:
    """Click-through prediction: BCE on (user, item, label) examples; AUC and LogLoss.

    Args:
      config: the run's config.
      split: the data to train on; by default `config.data` is loaded and split. A given split
        needs a validation part (early stopping, the best checkpoint); its test part is
        optional.
    """

    family = "ctr"
    best_metric = "auc"
    best_mode = "max"
    #: the vocabulary-sized tables, split by rows over the "model" mesh axis.
    sharded_tables = ("embedding/table", "linear/table")

    def __init__(self, config: ConfigDict, split: Split | None = None) -> None:
        self.config = config
        self.split = split
        self.arrays: dict[str, dict[str, np.ndarray]] = {}
        self.encoder: FeatureEncoder | None = None
        self.model: Any = None
        self.functions: CTRFunctions | None = None

    @property
    def parts(self) -> tuple[str, ...]:
        """The parts with encoded examples ("train", "valid", maybe "test")."""
        return tuple(self.arrays)

    def prepare(self, workdir: Path) -> None:
        no_valid = "the CTR task needs a validation part; use 3 data.fractions"
        split = task_split(self.config, self.split, no_valid)
        encoder_path = workdir / "encoders" / "features.json"
        if encoder_path.exists():
            # A resumed run keeps the vocabulary its parameters were trained with.
            self.encoder = FeatureEncoder.load(encoder_path)
        else:
            fields = resolve_ctr_fields(self.config.data, split.train)
            self.encoder = FeatureEncoder.fit(split.train, fields)
            if jax.process_index() == 0:
                record_fields(fields, split.train, workdir)
                self.encoder.save(encoder_path)
        threshold = self.config.data.label_threshold
        for name, part in split.parts().items():
            # Training examples are the log the encoder was fitted on: each leaves its own
            # rating out of the statistics it is given (data/log_fields.py).
            self.arrays[name] = self.encoder.encode(
                part, label=threshold, leave_out=name == "train"
            )
        self._build_model()

    def restore(self, workdir: Path) -> None:
        """Rebuilds the encoder and model of a finished run, without loading any data."""
        self.encoder = FeatureEncoder.load(workdir / "encoders" / "features.json")
        self._build_model()

    def _build_model(self) -> None:
        assert self.encoder is not None
        entry = get_model(self.config.model.name)
        spec = self.encoder.spec
        # Tables split over the "model" axis need rows in multiples of its size, and
        # parallel.table_rows_multiple gives runs on different splits one shape; the extra
        # rows belong to ids that no example has, so they change no output. With the default
        # sizes 1 nothing is added, which is also how runs written before config.parallel
        # existed were trained.
        parallel = self.config.get("parallel", {})
        multiple = math.lcm(
            parallel.get("model_axis_size", 1), parallel.get("table_rows_multiple", 1)
        )
        rows = padded_rows(spec.vocab_size, multiple)
        spec = dataclasses.replace(spec, vocab_size=rows)
        self.model = entry.module(model_config(self.config, spec=spec))
        self.functions = CTRFunctions(self.model)

    def example_batch(self) -> dict[str, np.ndarray]:
        """A one-example batch of the right structure (for init and shape checks)."""
        return self.functions.example_batch()

    def init_params(self, rng: jax.Array) -> PyTree:
        return self.functions.init_params(rng)

    def loss_sums(
        self, params: PyTree, batch: PyTree, rng: jax.Array, train: bool
    ) -> dict[str, jax.Array]:
        return self.functions.loss_sums(params, batch, rng, train)

    def steps_per_epoch(self, batch_size: int) -> int:
        return num_batches(self.arrays["train"]["label"].shape[0], batch_size)

    def train_batches(
        self, epoch: int, batch_size: int, num_shards: int, process_rows: slice | None = None
    ) -> Iterator[dict[str, np.ndarray]]:
        return batches(
            self.arrays["train"],
            batch_size,
            num_shards=num_shards,
            shuffle=True,
            seed=self.config.seed,
            epoch=epoch,
            process_rows=process_rows,
        )

    def predict(self, params: PyTree, batch: PyTree) -> tuple[jax.Array, dict[str, jax.Array]]:
        return self.functions.predict(params, batch)

    def probabilities(self, params: PyTree, batch: PyTree) -> jax.Array:
        """[N] float32 P(positive) of an encoded batch."""
        return self.functions.probabilities(params, batch)

    def eval_batches(
        self, part: str, batch_size: int, num_shards: int, process_rows: slice | None = None
    ) -> Iterator[dict[str, np.ndarray]]:
        return batches(
            self.arrays[part],
            batch_size,
            num_shards=num_shards,
            shuffle=False,
            process_rows=process_rows,
        )

    def eval_metrics(
        self, part: str, per_example: np.ndarray, sums: dict[str, float]
    ) -> dict[str, float]:
        labels = self.arrays[part]["label"]
        return {"auc": auc(labels, per_example), "logloss": logloss(labels, per_example)}
