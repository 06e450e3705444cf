"""Model families as `Task`s of the training loop: their data, loss and validation metrics.

`CTRTask` trains xDeepFM and Wide & Deep on labelled (user, item) pairs; `ClozeTask` trains
BERT4Rec on item sequences, `NextItemTask` SASRec; `make_task` picks the task from
`config.model.name`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from ml_collections import ConfigDict

from shortrec_jax.config_files import dataclass_from_mapping
from shortrec_jax.data import Dataset
from shortrec_jax.data.auto_fields import record_fields, resolve_ctr_fields
from shortrec_jax.data.batching import batches, num_batches
from shortrec_jax.data.features import FeatureEncoder
from shortrec_jax.data.sequences import (
    SequenceData,
    cloze_mask,
    cloze_rng,
    history_as_of,
    next_item_targets,
    num_last_item_rows,
)
from shortrec_jax.data.side_files import load_configured
from shortrec_jax.data.splits import SPLITS, Split, subsample
from shortrec_jax.io import write_json_atomic
from shortrec_jax.metrics import auc, logloss, rank_metrics_from_ranks
from shortrec_jax.models import get_model
from shortrec_jax.models.seq_losses import sampled_softmax_loss, softmax_loss
from shortrec_jax.models.transformer import next_item_scores
from shortrec_jax.vocabulary import ItemVocabulary

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
    ds = load_configured(data)
    if data.subsample < 1.0:
        ds = subsample(ds, data.subsample, seed=config.seed)
    return SPLITS[data.split](ds, **{k: options[k] for k in _SPLIT_OPTIONS[data.split]})


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

    @property
    def parts(self) -> tuple[str, ...]:
        """The parts with encoded examples ("train", "valid", maybe "test")."""
        return tuple(self.arrays)

    def prepare(self, workdir: Path) -> None:
        split = self.split if self.split is not None else load_split(self.config)
        if split.valid is None:
            raise ValueError("the CTR task needs a validation part; use 3 data.fractions")
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
            self.arrays[name] = self.encoder.encode(part, label=threshold)
        self._build_model()

    def restore(self, workdir: Path) -> None:
        """Rebuilds the encoder and model of a finished run, without loading any data."""
        self.encoder = FeatureEncoder.load(workdir / "encoders" / "features.json")
        self._build_model()

    def _build_model(self) -> None:
        assert self.encoder is not None
        entry = get_model(self.config.model.name)
        spec = self.encoder.spec
        # Tables split over the "model" axis need rows in multiples of its size; the extra
        # rows belong to ids that no example has, so they change no output. With the default
        # size 1 nothing is added, which is also how runs written before config.parallel
        # existed were trained.
        multiple = self.config.parallel.model_axis_size if "parallel" in self.config else 1
        rows = padded_rows(spec.vocab_size, multiple)
        spec = dataclasses.replace(spec, vocab_size=rows)
        self.model = entry.module(model_config(self.config, spec=spec))

    def example_batch(self) -> dict[str, np.ndarray]:
        """A one-example batch of the right structure (for init and shape checks)."""
        spec = self.encoder.spec
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
        return self.model.init({"params": rng}, self.example_batch(), train=False)["params"]

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
        logits = self.model.apply({"params": params}, batch, train=False)
        return jax.nn.sigmoid(logits), self._sums(logits, batch)

    def probabilities(self, params: PyTree, batch: PyTree) -> jax.Array:
        """[N] float32 P(positive) of an encoded batch (a `TrainedRun`'s predict)."""
        return jax.nn.sigmoid(self.model.apply({"params": params}, batch, train=False))

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


class ClozeTask:
    """Next-item prediction with BERT4Rec: cloze training, full-ranking HR/NDCG/MRR.

    Training windows come from the training part only; a validation user's history is its
    training sequence, a test user's history adds the validation item (leave-one-out). Each
    evaluated user's held-out item is ranked against every item except the ones already in
    that user's history. Seen items are kept as padded index lists and turned into a mask one
    batch at a time on the device: nothing here is shaped [users, items].

    Validation ranks over the full catalogue only; the test part also ranks against
    `eval.sampled_negatives` popularity-sampled items (the BERT4Rec paper's protocol), which
    the trainer computes once, for the best checkpoint.

    Args:
      config: the run's config (see configs/bert4rec_ml100k.py).
      split: the data to train on; by default `config.data` is loaded and split. It needs a
        validation part; a test part is optional.
    """

    family = "sequence"
    best_metric = "ndcg@10"
    best_mode = "max"
    #: the catalogue-sized parameters (the tied item table and the output bias), split by
    #: rows over the "model" mesh axis; their num_items + 2 rows must divide by its size.
    sharded_tables = ("item_embed/embedding", "output_bias")

    def __init__(self, config: ConfigDict, split: Split | None = None) -> None:
        self.config = config
        self.split = split
        self.num_items = 0
        self.item_ids: np.ndarray | None = None
        self.windows: np.ndarray | None = None
        self.eval: dict[str, dict[str, np.ndarray]] = {}
        #: part -> (item indices [T] int32, offsets [N + 1]): each evaluated user's seen items.
        self.seen: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.model: Any = None

    @property
    def parts(self) -> tuple[str, ...]:
        return ("train", *self.eval)

    @property
    def seen_width(self) -> int:
        """The padded width of the seen lists: the longest history of any part (one shape for
        every evaluation batch, so the eval step compiles once)."""
        return max(
            [1] + [int(np.diff(offsets).max(initial=0)) for _, offsets in self.seen.values()]
        )

    def prepare(self, workdir: Path) -> None:
        split = self.split if self.split is not None else load_split(self.config)
        if split.valid is None:
            raise ValueError(
                f"the {self.config.model.name} task needs a validation part "
                "(data.split=leave_one_out)"
            )
        self.num_items = split.train.num_items
        self.item_ids = split.train.item_ids
        self.windows = self._train_windows(SequenceData.from_dataset(split.train))
        popularity = np.bincount(split.train.items, minlength=self.num_items).astype(np.float64)
        for stream, part in enumerate(("valid", "test")):
            if getattr(split, part) is not None:
                self.eval[part] = self._eval_arrays(
                    history_as_of(split, part), getattr(split, part), popularity, stream
                )
        if jax.process_index() == 0:
            write_json_atomic(
                workdir / "encoders" / "sequences.json",
                {"num_items": self.num_items, "item_ids": self.item_ids.tolist()},
            )
        self._build_model()

    def _train_windows(self, seqs: SequenceData) -> np.ndarray:
        """[S, L] windows over the whole training history (cloze masks are drawn per epoch)."""
        data = self.config.data
        return seqs.train_windows(data.max_len, stride=data.window_stride or None, min_len=2)

    def restore(self, workdir: Path) -> None:
        saved = json.loads((workdir / "encoders" / "sequences.json").read_text())
        self.num_items = int(saved["num_items"])
        self.item_ids = np.asarray(saved["item_ids"], dtype=np.str_)
        self._build_model()

    def _build_model(self) -> None:
        entry = get_model(self.config.model.name)
        cfg = model_config(self.config, num_items=self.num_items, max_len=self.config.data.max_len)
        self.model = entry.module(cfg)

    def _eval_arrays(
        self, history: SequenceData, part: Dataset, popularity: np.ndarray, stream: int
    ) -> dict[str, np.ndarray]:
        """Inputs [N, L], targets [N], rows [N] (into the seen lists) and, for the test part
        when configured, sampled negatives [N, S] of one held-out part. The items each user
        has seen go to `self.seen[part name]` in CSR layout; `eval_batches` pads them per
        batch."""
        users = part.users
        known = users < history.num_users
        safe = np.where(known, users, 0)
        lengths = np.where(known, history.lengths()[safe], 0)
        rows = np.repeat(np.arange(users.size), lengths)
        starts = np.repeat(history.offsets[safe] - np.cumsum(lengths) + lengths, lengths)
        items = history.values[starts + np.arange(rows.size)] - 1
        # A held-out item seen before (a repeat) must stay rankable.
        keep = items != part.items[rows]
        offsets = np.zeros(users.size + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows[keep], minlength=users.size), out=offsets[1:])
        seen = (items[keep].astype(np.int32), offsets)
        self.seen["test" if stream else "valid"] = seen
        arrays = {
            "inputs": history.eval_inputs(users, self.config.data.max_len),
            "target": part.items.astype(np.int32),
            "row": np.arange(users.size, dtype=np.int32),
        }
        count = self.config.eval.sampled_negatives
        if count and stream > 0:
            rng = np.random.default_rng([self.config.seed, stream])
            arrays["negatives"] = sample_negatives(seen, part.items, popularity, count, rng)
        return arrays

    def init_params(self, rng: jax.Array) -> PyTree:
        ids = jnp.zeros((1, self.config.data.max_len), jnp.int32)
        return self.model.init({"params": rng}, ids, train=False)["params"]

    def _max_predictions(self) -> int | None:
        return self.config.train.max_predictions or None

    def loss_sums(
        self, params: PyTree, batch: PyTree, rng: jax.Array, train: bool
    ) -> dict[str, jax.Array]:
        # Padding rows of a partial batch carry weight 0 at every position.
        weights = batch["weights"] * batch["weight"][:, None]
        args = (self.model, params, batch["inputs"], batch["labels"], weights, rng, train)
        options = {"max_predictions": self._max_predictions()}
        negatives = self.config.train.num_negatives
        if negatives:
            sampler = self.config.train.negative_sampler
            loss, count = sampled_softmax_loss(
                *args, num_negatives=negatives, sampler=sampler, **options
            )
        else:
            loss, count = softmax_loss(*args, **options)
        return {"loss": loss, "count": count}

    def _num_train_rows(self) -> int:
        return self.windows.shape[0] + num_last_item_rows(
            self.windows, self.config.data.last_item_prob
        )

    def steps_per_epoch(self, batch_size: int) -> int:
        return num_batches(self._num_train_rows(), batch_size)

    def _train_arrays(self, epoch: int) -> dict[str, np.ndarray]:
        data = self.config.data
        inputs, labels, weights = cloze_mask(
            self.windows,
            mask_prob=data.mask_prob,
            mask_id=ItemVocabulary(self.num_items).mask_id,
            rng=cloze_rng(self.config.seed, epoch),
            last_item_prob=data.last_item_prob,
            max_predictions=self._max_predictions(),
        )
        return {"inputs": inputs, "labels": labels, "weights": weights}

    def train_batches(
        self, epoch: int, batch_size: int, num_shards: int, process_rows: slice | None = None
    ) -> Iterator[dict[str, np.ndarray]]:
        return batches(
            self._train_arrays(epoch),
            batch_size,
            num_shards=num_shards,
            shuffle=True,
            seed=self.config.seed,
            epoch=epoch,
            process_rows=process_rows,
        )

    def next_item_scores(self, params: PyTree, inputs: jax.Array) -> jax.Array:
        """[B, I] float32 scores of every item after [B, L] inputs (a `TrainedRun`'s predict)."""
        return next_item_scores(self.model, params, inputs)

    def predict(self, params: PyTree, batch: PyTree) -> tuple[jax.Array, dict[str, jax.Array]]:
        scores = self.next_item_scores(params, batch["inputs"])  # [b, I]
        target = jnp.take_along_axis(scores, batch["target"][:, None], axis=1)  # [b, 1]
        # This batch's seen-item mask; the padding index I falls in a column that is cut off.
        rows = jnp.arange(scores.shape[0])[:, None]
        pad = ItemVocabulary(self.num_items).index_pad
        seen = jnp.zeros((scores.shape[0], pad + 1), bool)
        seen = seen.at[rows, batch["seen"]].set(True)[:, :pad]  # [b, I]
        # The rank counts the allowed items scored strictly above the held-out one.
        ranks = [jnp.sum((scores > target) & ~seen, axis=1)]
        if "negatives" in batch:
            negative = jnp.take_along_axis(scores, batch["negatives"], axis=1)  # [b, S]
            ranks.append(jnp.sum(negative > target, axis=1))
        return jnp.stack(ranks, axis=1).astype(jnp.int32), {}  # [b, 1 or 2]

    def eval_batches(
        self, part: str, batch_size: int, num_shards: int, process_rows: slice | None = None
    ) -> Iterator[dict[str, np.ndarray]]:
        """Batches of the part, each with "seen" [b, W] int32: the rows' seen item indices
        padded with `ItemVocabulary.index_pad` = num_items (built here, batch by batch, from
        the CSR lists)."""
        values, offsets = self.seen[part]
        pad = ItemVocabulary(self.num_items).index_pad
        width = self.seen_width
        for batch in batches(
            self.eval[part],
            batch_size,
            num_shards=num_shards,
            shuffle=False,
            process_rows=process_rows,
        ):
            rows = batch.pop("row")
            lengths = offsets[rows + 1] - offsets[rows]
            cols = np.arange(width)
            index = np.minimum(offsets[rows][:, None] + cols, max(values.size - 1, 0))
            real = cols < lengths[:, None]
            picked = values[index] if values.size else np.zeros(index.shape, np.int32)
            batch["seen"] = np.where(real, picked, pad).astype(np.int32)
            yield batch

    def eval_metrics(
        self, part: str, per_example: np.ndarray, sums: dict[str, float]
    ) -> dict[str, float]:
        ks = tuple(self.config.eval.ks)
        metrics = rank_metrics_from_ranks(per_example[:, 0], ks)
        if per_example.shape[1] > 1:
            # The BERT4Rec paper's protocol, labelled: it is not comparable with full ranking.
            name = f"sampled{self.config.eval.sampled_negatives}_pop"
            sampled = rank_metrics_from_ranks(per_example[:, 1], ks)
            metrics.update({f"{name}/{k}": v for k, v in sampled.items()})
        return metrics


class NextItemTask(ClozeTask):
    """Next-item prediction with SASRec: every position of a window predicts the item after it.

    Windows of `data.max_len + 1` items with stride `data.window_stride` (0 = only each user's
    latest window); with stride = max_len consecutive windows share one item, so every
    training interaction but each user's first is a target exactly once. Evaluation is
    `ClozeTask`'s (the mask token appended after the history; SASRec reads the state before
    it, see `SequenceTransformer.next_state`).
    """

    def _train_windows(self, seqs: SequenceData) -> np.ndarray:
        data = self.config.data
        return seqs.train_windows(data.max_len + 1, stride=data.window_stride or None, min_len=2)

    def _num_train_rows(self) -> int:
        return self.windows.shape[0]

    def _train_arrays(self, epoch: int) -> dict[str, np.ndarray]:
        inputs, labels, weights = next_item_targets(self.windows)
        return {"inputs": inputs, "labels": labels, "weights": weights}


def sample_negatives(
    seen: tuple[np.ndarray, np.ndarray],
    targets: np.ndarray,
    popularity: np.ndarray,
    count: int,
    rng: np.random.Generator,
    max_entries: int = 2**20,
) -> np.ndarray:
    """Popularity-sampled negatives per user, without replacement (the BERT4Rec paper's).

    Args:
      seen: (item indices [T], offsets [N + 1]): user n's seen items (never sampled) are
        `indices[offsets[n]:offsets[n + 1]]`.
      targets: [N] int, each user's held-out item (never sampled).
      popularity: [I] training counts; an item is drawn with probability proportional to it.
      count: S negatives per user.
      rng: the generator.
      max_entries: users are drawn a few at a time, with at most this many [users, I]
        weights in memory at once (about 8 MB per float64 array; never [N, I]).

    Returns:
      [N, S] int32 item indices.
    """
    values, offsets = seen
    num_items = popularity.size
    chunk = max(1, max_entries // max(num_items, 1))
    out = np.empty((targets.size, count), dtype=np.int32)
    for start in range(0, targets.size, chunk):
        stop = min(start + chunk, targets.size)
        weights = np.broadcast_to(popularity, (stop - start, num_items)).copy()  # [c, I]
        lo, hi = offsets[start], offsets[stop]
        rows = np.repeat(np.arange(stop - start), np.diff(offsets[start : stop + 1]))
        weights[rows, values[lo:hi]] = 0.0
        weights[np.arange(stop - start), targets[start:stop]] = 0.0
        available = np.count_nonzero(weights > 0, axis=1)
        if available.min() < count:
            row = int(np.argmin(available))
            raise ValueError(
                f"eval.sampled_negatives={count}, but user row {start + row} has only "
                f"{available[row]} unseen items with training interactions"
            )
        # Gumbel top-k draws S items without replacement with probabilities proportional to
        # the weights, for every row at once.
        with np.errstate(divide="ignore"):
            keys = np.log(weights) + rng.gumbel(size=weights.shape)
        out[start:stop] = np.argsort(-keys, axis=1, kind="stable")[:, :count]
    return out


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
