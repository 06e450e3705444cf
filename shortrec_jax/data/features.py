"""Feature encoding for the CTR models: declared fields -> the fixed-shape batch of `schema.py`.

A feature set is a list of `FieldSpec`s (`fields.py`, which also says what each kind of field
reads). `FeatureEncoder.fit(train, fields)` learns every vocabulary and statistic from the
training part only (`fitted_fields.py`); `encode` and `encode_pairs` then turn
interactions or arbitrary (user, item) pairs into the batch dict of `schema.py`, reading side
information (ages, genres, years, vectors) from whichever `Dataset` is given. Values are keyed
by their raw strings, not by index, so an encoder fitted on one load of a source encodes
another load, or a served catalogue, consistently. The fields fitted on the training log (user
and item statistics, the user's history bag: `log_fields.py`) are kept in the encoder itself.

Ids. Categorical and multi-hot fields share one vocabulary (`BatchLayout.vocab_size`): each
field owns the range [offset, offset + size) in declaration order, its first id being the
reserved one. In the batch, "cat" lists the categorical and bucketised fields in declaration
order, "multi", "num" and "dense" likewise for their kinds (a bucketised statistic is in "cat",
a standardised one in "num", a history in "multi").

Speed: encoding builds one row table per user and per item (plus an "unknown" row), cached per
side-information object, so a batch is a gather: millions of interactions per second.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from shortrec_jax.data.dataset import DataError, Dataset
from shortrec_jax.data.fields import FieldSpec
from shortrec_jax.data.fitted_fields import (
    FittedField,
    categorical_column,
    categorical_rows,
    dense_rows,
    fit_field,
    multi_hot_rows,
    numeric_column,
    ragged_column,
)
from shortrec_jax.data.log_fields import (
    fit_history,
    fit_statistic,
    history_rows,
    quantity,
    scale_statistic,
    statistic_rows,
    statistic_values,
)
from shortrec_jax.io import write_atomic
from shortrec_jax.schema import BatchLayout

# The study's notion of an accurate recommendation: a rating of 4 or more is a positive.
DEFAULT_LABEL_THRESHOLD = 4.0

_FORMAT = "shortrec_jax.FeatureEncoder"
_VERSION = 1
# Side-information tables kept per encoder; train, valid and test share one.
_CACHE_SIZE = 4

Batch = dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class _Tables:
    """Encoded rows of every user and item of one data set, plus a last "unknown" row.

    Attributes:
      user_cat: [U + 1, Fcu] int32 global ids of the user-side categorical fields.
      item_cat: [I + 1, Fci] int32 global ids of the item-side categorical fields.
      multi: [I + 1, Fm, L] int32; multi_mask: [I + 1, Fm, L] float32.
      num: [I + 1, Fn] float32; dense: [I + 1, Dd] float32.
      statistics: per statistic field, ([R + 1] counts, [R + 1] sums) of its side's rows.
      histories: per history field, ([U + 1, L] ids, [U + 1, L] mask, [I + 1] own item ids).
    (Fci, Fm and Fn count the item-side table fields only; the log fields are computed per
    pair from `statistics` and `histories`.)
    """

    user_cat: np.ndarray
    item_cat: np.ndarray
    multi: np.ndarray
    multi_mask: np.ndarray
    num: np.ndarray
    dense: np.ndarray
    statistics: tuple[tuple[np.ndarray, np.ndarray], ...]
    histories: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]


class FeatureEncoder:
    """Encodes interactions and (user, item) pairs into CTR batches (see `schema.py`).

    Build with `FeatureEncoder.fit` or `FeatureEncoder.load`; `spec` tells the model its sizes.
    """

    def __init__(self, fields: Sequence[FittedField]) -> None:
        """Internal: use `fit` or `load`."""
        self._fields = list(fields)
        self._groups = self._by_group()
        self._multi_len = max([1, *(fld.multi_len for fld in self._groups["multi"])])
        self._statistics = [fld for fld in self._fields if fld.spec.kind == "statistic"]
        self._histories = [fld for fld in self._fields if fld.spec.kind == "history"]
        # "cat" is gathered as [user-side columns, item-side columns, bucketised statistics],
        # "num" as [item numbers, statistics], "multi" as [item multi-hots, histories]; these
        # put the columns back in declaration order (None when they already are).
        self._order = {
            group: _gather_order([_gather_rank(fld) for fld in self._groups[group]])
            for group in ("cat", "num", "multi")
        }
        self._cache: dict[tuple[int, ...], tuple[list[object], _Tables]] = {}

    # -- fitting -------------------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        train: Dataset,
        fields: Sequence[FieldSpec],
        *,
        item_arrays: dict[str, np.ndarray] | None = None,
    ) -> FeatureEncoder:
        """Learns vocabularies and statistics from the training part only.

        Args:
          train: the training interactions (side information of the whole catalogue).
          fields: the feature set; names must be unique.
          item_arrays: external dense item arrays, column -> [I, D] aligned with
            `train.item_ids`, for dense fields whose column is not "item_vectors".

        Returns:
          The fitted encoder.

        Raises:
          DataError: a repeated field name, or a field whose column `train` lacks (naming it).
        """
        names = [f.name for f in fields]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise DataError(f"feature field names must be unique; repeated: {repeated}")
        if not fields:
            raise DataError("a feature set needs at least one field")
        seen_users = np.unique(train.users)
        seen_items = np.unique(train.items)
        arrays = dict(item_arrays or {})
        fitted: dict[str, FittedField] = {}
        for f in fields:
            if f.kind == "statistic":
                fitted[f.name] = fit_statistic(train, f)
            elif f.kind != "history":
                fitted[f.name] = fit_field(train, f, arrays, seen_users, seen_items)
        for f in fields:
            if f.kind == "history":
                fitted[f.name] = fit_history(train, f, _item_ids_of(f, fitted).vocab)
        ordered = [fitted[f.name] for f in fields]
        offset = 0
        for fld in ordered:
            if fld.size:
                fld.offset = offset
                offset += fld.size
        for f in fields:
            if f.ids_of:
                fitted[f.name].offset = fitted[f.ids_of].offset
        return cls(ordered)

    # -- what the model needs ------------------------------------------------------------------

    @property
    def fields(self) -> tuple[FieldSpec, ...]:
        """The declared fields, in declaration order."""
        return tuple(fld.spec for fld in self._fields)

    @property
    def spec(self) -> BatchLayout:
        """Sizes of the encoded groups, for building the model's tables."""
        by_kind = self._groups
        return BatchLayout(
            vocab_size=max(1, sum(fld.size for fld in self._fields)),
            cat_fields=tuple(fld.spec.name for fld in by_kind["cat"]),
            multi_fields=tuple(fld.spec.name for fld in by_kind["multi"]),
            multi_len=self._multi_len,
            numeric_fields=tuple(fld.spec.name for fld in by_kind["num"]),
            dense_fields=tuple(fld.spec.name for fld in by_kind["dense"]),
            dense_dims=tuple(fld.dim for fld in by_kind["dense"]),
        )

    def offset(self, name: str) -> int:
        """The first (reserved) id of a categorical, bucketised or multi-hot field."""
        fld = self._field(name)
        if not fld.size:
            raise DataError(f"field {name!r} ({fld.spec.kind}) has no ids")
        return fld.offset

    def vocabulary(self, name: str) -> np.ndarray:
        """[V] str, the values of local ids 1..V of a categorical or multi-hot field."""
        fld = self._field(name)
        if fld.vocab is None:
            raise DataError(f"field {name!r} ({fld.spec.kind}) has no vocabulary")
        return fld.vocab

    def statistics(self, name: str) -> tuple[float, float]:
        """(mean, std) of a standardised numeric or statistic field."""
        fld = self._field(name)
        if fld.spec.kind not in ("numeric", "statistic") or fld.spec.buckets:
            raise DataError(f"field {name!r} is not a standardised numeric or statistic field")
        return fld.mean, fld.std

    def _field(self, name: str) -> FittedField:
        for fld in self._fields:
            if fld.spec.name == name:
                return fld
        raise DataError(f"unknown feature field {name!r}; fields are {[*self.fields]}")

    def _by_group(self) -> dict[str, list[FittedField]]:
        groups: dict[str, list[FittedField]] = {"cat": [], "multi": [], "num": [], "dense": []}
        for fld in self._fields:
            s = fld.spec
            if s.is_cat:
                groups["cat"].append(fld)
            elif s.kind in ("multi_hot", "history"):
                groups["multi"].append(fld)
            elif s.kind in ("numeric", "statistic"):
                groups["num"].append(fld)
            else:
                groups["dense"].append(fld)
        return groups

    # -- encoding ------------------------------------------------------------------------------

    def encode(
        self,
        ds: Dataset,
        *,
        label: float | Callable[[Dataset], np.ndarray] = DEFAULT_LABEL_THRESHOLD,
        leave_out: bool = False,
    ) -> Batch:
        """Encodes every interaction of `ds` (N = ds.num_interactions).

        Args:
          ds: interactions with side information (a part of the split `fit` saw, or another
            load of the source: values are matched by raw string).
          label: a threshold (label = rating >= threshold) or a function of `ds` returning
            [N] labels (e.g. from `ds.extra["watch_ratio"]`).
          leave_out: `ds` holds interactions of the log `fit` was given (its training
            examples): each leaves its own rating out of its user's and item's statistics.

        Returns:
          The batch of `schema.py`: "cat" [N, Fc] int32, "multi" [N, Fm, L] int32,
          "multi_mask" [N, Fm, L] float32, "num" [N, Fn] float32, "dense" [N, Dd] float32,
          "label" [N] float32, "weight" [N] float32 (ones).
        """
        own = ds.ratings if leave_out else None
        batch = self._gather(self._tables(ds), ds.users, ds.items, own)
        if callable(label):
            y = np.asarray(label(ds), dtype=np.float32)
            if y.shape != (ds.num_interactions,):
                raise DataError(
                    f"label function must return [N={ds.num_interactions}] labels, got {y.shape}"
                )
        else:
            y = (ds.ratings >= label).astype(np.float32)
        batch["label"] = y
        return batch

    def encode_pairs(self, users: np.ndarray, items: np.ndarray, side: Dataset) -> Batch:
        """Encodes arbitrary (user, item) pairs for scoring.

        Args:
          users: [N] int user indices of `side`; -1 or any index outside [0, U) is an unknown
            user (every user field gets its reserved id).
          items: [N] int item indices of `side`; likewise -1 or out of range is unknown.
          side: the data set whose vocabularies and side information the indices refer to.

        Returns:
          The batch of `encode` without "label": "cat", "multi", "multi_mask", "num",
          "dense" and "weight" (ones).
        """
        users = np.asarray(users)
        items = np.asarray(items)
        if users.ndim != 1 or users.shape != items.shape:
            raise ValueError(
                f"users and items must be [N] of one length, got {users.shape} and {items.shape}"
            )
        # Out-of-range indices point at the tables' last row, the unknown user or item.
        u = np.where((users >= 0) & (users < side.num_users), users, side.num_users)
        i = np.where((items >= 0) & (items < side.num_items), items, side.num_items)
        return self._gather(self._tables(side), u, i)

    def _gather(
        self, t: _Tables, u: np.ndarray, i: np.ndarray, own: np.ndarray | None = None
    ) -> Batch:
        """The batch of users `u` [N] and items `i` [N] (row indices of the tables); `own`
        [N], when given, are the pairs' ratings to leave out of their statistics."""
        n = u.shape[0]
        stat_cat, stat_num = [], []
        for fld, (counts, sums) in zip(self._statistics, t.statistics, strict=True):
            rows = u if fld.side == "user" else i
            c, s = counts[rows], sums[rows]
            if own is not None:
                c, s = c - 1.0, s - quantity(fld.spec, own)
                if np.any(c < 0):
                    raise DataError(
                        f"field {fld.spec.name!r}: encode(leave_out=True) was given interactions "
                        "that are not in the log the encoder was fitted on"
                    )
            column = scale_statistic(fld, statistic_values(fld, c, s))
            (stat_cat if fld.spec.buckets else stat_num).append(column[:, None])
        cat = np.concatenate([t.user_cat[u], t.item_cat[i], *stat_cat], axis=1)  # [N, Fc]
        num = np.concatenate([t.num[i], *stat_num], axis=1)  # [N, Fn]
        multi, multi_mask = [t.multi[i]], [t.multi_mask[i]]
        length = self._multi_len
        for ids, mask, own_ids in t.histories:
            h_ids = np.full((n, length), ids[-1, 0], dtype=np.int32)  # [N, L]
            h_mask = np.zeros((n, length), dtype=np.float32)
            width = ids.shape[1]
            h_ids[:, :width] = ids[u]
            # The pair's own item is never in its bag (log_fields.py says why).
            h_mask[:, :width] = mask[u] * (ids[u] != own_ids[i][:, None])
            multi.append(h_ids[:, None])
            multi_mask.append(h_mask[:, None])
        batch = {
            "cat": cat,
            "multi": np.concatenate(multi, axis=1),  # [N, Fm, L]
            "multi_mask": np.concatenate(multi_mask, axis=1),
            "num": num,
            "dense": t.dense[i],
            "weight": np.ones(n, dtype=np.float32),
        }
        for group, order in self._order.items():
            if order is not None:
                batch[group] = batch[group][:, order]
                if group == "multi":
                    batch["multi_mask"] = batch["multi_mask"][:, order]
        return batch

    def _tables(self, ds: Dataset) -> _Tables:
        """The row tables of `ds`, cached by the identity of the side information they read."""
        sources: list[object] = [ds.user_ids, ds.item_ids]
        for fld in self._fields:
            s = fld.spec
            if s.kind == "categorical":
                sources.append(categorical_column(ds, s, fld.side)[1])
            elif s.kind == "multi_hot":
                sources.append(ragged_column(ds, s))
            elif s.kind == "numeric":
                sources.append(numeric_column(ds, s))
            elif s.kind == "dense":
                sources.append(ds.item_vectors)
        key = tuple(id(x) for x in sources)
        hit = self._cache.get(key)
        if hit is not None:
            return hit[1]
        tables = self._build_tables(ds)
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.pop(next(iter(self._cache)))
        # The entry holds the sources, so their ids cannot be reused while it lives.
        self._cache[key] = (sources, tables)
        return tables

    def _build_tables(self, ds: Dataset) -> _Tables:
        groups = self._groups
        nu, ni, length = ds.num_users, ds.num_items, self._multi_len
        user_cols, item_cols = [], []
        for fld in groups["cat"]:
            if fld.spec.kind != "statistic":
                cols = user_cols if fld.side == "user" else item_cols
                cols.append(categorical_rows(fld, ds))
        item_multi = [fld for fld in groups["multi"] if fld.spec.kind == "multi_hot"]
        multi = np.zeros((ni + 1, len(item_multi), length), dtype=np.int32)
        mask = np.zeros((ni + 1, len(item_multi), length), dtype=np.float32)
        for k, fld in enumerate(item_multi):
            multi[:, k, :] = fld.offset
            multi[:ni, k, :], mask[:ni, k, :] = multi_hot_rows(
                fld, ragged_column(ds, fld.spec), ni, length
            )
        item_num = [fld for fld in groups["num"] if fld.spec.kind == "numeric"]
        num = np.zeros((ni + 1, len(item_num)), dtype=np.float32)
        for k, fld in enumerate(item_num):
            z = (numeric_column(ds, fld.spec).astype(np.float64) - fld.mean) / fld.std
            num[:ni, k] = np.nan_to_num(z, nan=0.0)
        dense_parts = [dense_rows(fld, ds) for fld in groups["dense"]]
        dense = np.zeros((ni + 1, sum(fld.dim for fld in groups["dense"])), dtype=np.float32)
        if dense_parts:
            dense[:ni] = np.concatenate(dense_parts, axis=1)
        return _Tables(
            user_cat=_stack_columns(user_cols, nu + 1),
            item_cat=_stack_columns(item_cols, ni + 1),
            multi=multi,
            multi_mask=mask,
            num=num,
            dense=dense,
            statistics=tuple(statistic_rows(fld, ds) for fld in self._statistics),
            histories=tuple(
                history_rows(fld, ds, min(fld.multi_len, length)) for fld in self._histories
            ),
        )

    # -- saving --------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes the encoder to `path` (JSON) and `path` with suffix ".npz" (its arrays).

        Each file is written to a temporary name and renamed. The JSON records the SHA-256 of
        the .npz, so `load` refuses a pair that two different saves left behind.
        """
        path = Path(path)
        if path.suffix == ".npz":
            raise ValueError(f"encoder path {path} must be the JSON file, not the .npz")
        arrays: dict[str, np.ndarray] = {}
        for k, fld in enumerate(self._fields):
            arrays.update(fld.arrays(f"f{k}_"))
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        blob = buf.getvalue()
        meta = {
            "format": _FORMAT,
            "version": _VERSION,
            "fields": [fld.meta() for fld in self._fields],
            "arrays_sha256": hashlib.sha256(blob).hexdigest(),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path.with_suffix(".npz"), blob)
        write_atomic(path, (json.dumps(meta, indent=1) + "\n").encode())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FeatureEncoder:
        """Reads an encoder written by `save` (no pickle: arrays load with allow_pickle=False).

        Raises:
          DataError: a missing or malformed file, naming it.
        """
        path = Path(path)
        npz_path = path.with_suffix(".npz")
        try:
            meta = json.loads(path.read_text())
            blob = npz_path.read_bytes()
        except (OSError, ValueError) as e:
            raise DataError(f"{path}: cannot read the feature encoder ({e})") from None
        if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
            raise DataError(f"{path}: not a saved feature encoder (format {_FORMAT!r})")
        if meta.get("version") != _VERSION:
            raise DataError(f"{path}: encoder version {meta.get('version')}, expected {_VERSION}")
        if hashlib.sha256(blob).hexdigest() != meta.get("arrays_sha256"):
            raise DataError(f"{npz_path}: does not match {path} (written by another save?)")
        try:
            with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
            fields = [
                FittedField.from_saved(m, arrays, f"f{k}_") for k, m in enumerate(meta["fields"])
            ]
        except (KeyError, TypeError, ValueError, OSError) as e:
            raise DataError(f"{path}: malformed feature encoder ({e!r})") from None
        return cls(fields)


def _item_ids_of(f: FieldSpec, fitted: dict[str, FittedField]) -> FittedField:
    """The fitted item id field whose ids history `f` takes (an empty stand-in without
    `f.ids_of`: the history then has a vocabulary of its own)."""
    if not f.ids_of:
        return FittedField(f)
    target = fitted.get(f.ids_of)
    if target is None or target.spec.kind != "categorical" or target.side != "item":
        raise DataError(
            f"field {f.name!r}: ids_of={f.ids_of!r} must name the feature set's categorical "
            f"item id field; fields are {sorted(fitted)}"
        )
    if target.spec.source != "item_id":
        raise DataError(
            f"field {f.name!r}: ids_of={f.ids_of!r} reads {target.spec.source!r}, not the item id"
        )
    return target


def _gather_rank(fld: FittedField) -> int:
    """Where `_gather` puts a field's column within its group: user-side table columns (0),
    item-side table columns (1), then the log fields (2)."""
    if fld.spec.kind in ("statistic", "history"):
        return 2
    return 0 if fld.side == "user" and fld.spec.kind == "categorical" else 1


def _gather_order(ranks: list[int]) -> np.ndarray | None:
    """The permutation from gathered to declaration order of a group's columns, None when
    they are the same."""
    perm = np.argsort(ranks, kind="stable")
    return None if np.all(perm == np.arange(perm.size)) else np.argsort(perm)


def _stack_columns(cols: list[np.ndarray], rows: int) -> np.ndarray:
    """[rows, len(cols)] int32 from per-field columns (a [rows, 0] table when there are none)."""
    if not cols:
        return np.zeros((rows, 0), dtype=np.int32)
    return np.stack(cols, axis=1)
