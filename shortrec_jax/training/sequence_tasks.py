"""The sequence tasks: BERT4Rec's cloze training (`ClozeTask`), SASRec's next-item targets
(`NextItemTask`), and the popularity-sampled negatives of the BERT4Rec paper's test protocol.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import ConfigDict

from shortrec_jax.data import Dataset
from shortrec_jax.data.batching import batches, num_batches
from shortrec_jax.data.sequences import (
    SequenceData,
    cloze_mask,
    cloze_rng,
    history_as_of,
    next_item_targets,
    num_last_item_rows,
    window_rng,
)
from shortrec_jax.data.splits import Split
from shortrec_jax.io import write_json_atomic
from shortrec_jax.metrics import rank_metrics_from_ranks
from shortrec_jax.models import get_model
from shortrec_jax.models.seq_losses import sampled_softmax_loss, softmax_loss
from shortrec_jax.models.transformer import next_item_scores
from shortrec_jax.training.task_common import model_config, task_split
from shortrec_jax.vocabulary import ItemVocabulary

PyTree = Any


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
    #: items per training window beyond `data.max_len` (SASRec's also hold the next item)
    window_extra = 0
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
        self.sequences: SequenceData | None = None
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
        no_valid = (
            f"the {self.config.model.name} task needs a validation part (data.split=leave_one_out)"
        )
        split = task_split(self.config, self.split, no_valid)
        self.num_items = split.train.num_items
        self.item_ids = split.train.item_ids
        self.sequences = SequenceData.from_dataset(split.train)
        self.windows = self._train_windows(self.sequences)
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

    def _train_windows(
        self, seqs: SequenceData, jitter_rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """[S, L] windows over the whole training history (cloze masks are drawn per epoch)."""
        data = self.config.data
        return seqs.train_windows(
            data.max_len + self.window_extra,
            stride=data.window_stride or None,
            min_len=2,
            jitter_rng=jitter_rng,
        )

    def _epoch_windows(self, epoch: int) -> np.ndarray:
        """The epoch's training windows: re-cut with `data.window_jitter`, else the fixed ones."""
        if not self.config.data.get("window_jitter", False):
            return self.windows
        return self._train_windows(self.sequences, window_rng(self.config.seed, epoch))

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
            self._epoch_windows(epoch),
            mask_prob=data.mask_prob,
            mask_id=ItemVocabulary(self.num_items).mask_id,
            rng=cloze_rng(self.config.seed, epoch),
            last_item_prob=data.last_item_prob,
            max_predictions=self._max_predictions(),
            mask_last_item=data.mask_last_item,
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

    window_extra = 1

    def _num_train_rows(self) -> int:
        return self.windows.shape[0]

    def _train_arrays(self, epoch: int) -> dict[str, np.ndarray]:
        inputs, labels, weights = next_item_targets(self._epoch_windows(epoch))
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
