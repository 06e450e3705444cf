"""Feature encoding for the CTR models: declared fields -> the fixed-shape batch of `schema.py`.

A feature set is a list of `FieldSpec`s. `FeatureEncoder.fit(train, fields)` learns every
vocabulary and statistic from the training part only; `encode` and `encode_pairs` then turn
interactions or arbitrary (user, item) pairs into the batch dict of `schema.py`, reading side
information (ages, genres, years, vectors) from whichever `Dataset` is given. Values are keyed
by their raw strings, not by index, so an encoder fitted on one load of a source encodes
another load, or a served catalogue, consistently.

Field kinds:
  "categorical"  one id per example from a user or item string column, or from the raw user or
                 item id itself (column "user_id" / "item_id"). Vocabulary: the values of the
                 users (items) that occur in training, sorted; local id 0 is reserved for a value
                 training never saw, a missing value ("") and an unknown user or item.
  "multi_hot"    the ids of an item token column (`Dataset.item_multi_hot[column]`, or column
                 "item_tags" for `Dataset.item_tags`), padded to L. A token training never saw
                 is left out (mask 0), as is every token past the first L known ones.
  "numeric"      an item number (`Dataset.item_numeric[column]`). With `buckets=0` it is
                 standardised, (x - mean) / std, with the mean and (population) std of the
                 training interactions, NaN and unknown items giving 0 (the training mean);
                 with `buckets=B` it is cut at the B-quantiles of the training interactions into
                 up to B buckets and becomes a categorical field (NaN -> reserved id 0).
  "dense"        an item vector: `Dataset.item_vectors` (column "item_vectors") or an external
                 [I, D] array passed to `fit` under the column's name, used as is; unknown items
                 get zeros.

Ids. Categorical and multi-hot fields share one vocabulary (`FeatureSpec.vocab_size`): each
field owns the range [offset, offset + size) in declaration order, its first id being the
reserved one. In the batch, "cat" lists the categorical and bucketised fields in declaration
order, "multi", "num" and "dense" likewise for their kinds.

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

from shortrec_jax.data.dataset import DataError, Dataset, Ragged
from shortrec_jax.data.schema import FeatureSpec
from shortrec_jax.io import write_atomic

KINDS = ("categorical", "multi_hot", "numeric", "dense")
SIDES = ("user", "item")
USER_ID = "user_id"
ITEM_ID = "item_id"
ITEM_TAGS = "item_tags"
ITEM_VECTORS = "item_vectors"
# The study's notion of an accurate recommendation: a rating of 4 or more is a positive.
DEFAULT_LABEL_THRESHOLD = 4.0

_FORMAT = "shortrec_jax.FeatureEncoder"
_VERSION = 1
# Side-information tables kept per encoder; train, valid and test share one.
_CACHE_SIZE = 4

Batch = dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """One declared feature.

    Attributes:
      name: the field's name in `FeatureSpec` and in error messages; unique in a feature set.
      kind: one of KINDS (see the module docstring).
      column: the column it reads; "" means `name`. Categorical: "user_id", "item_id", a
        `Dataset.user_features` or `Dataset.item_categorical` key. Multi-hot: an
        `item_multi_hot` key or "item_tags". Numeric: an `item_numeric` key. Dense:
        "item_vectors" or a key of `fit(..., item_arrays=...)`.
      side: "user" or "item" for a categorical column that both sides have; "" infers it.
      buckets: numeric only; 0 standardises the value, B >= 2 makes B quantile buckets.
    """

    name: str
    kind: str
    column: str = ""
    side: str = ""
    buckets: int = 0

    def __post_init__(self) -> None:
        if not self.name:
            raise DataError(f"a feature field needs a name, got {self}")
        if self.kind not in KINDS:
            raise DataError(f"field {self.name!r}: kind {self.kind!r} is not one of {KINDS}")
        if self.side not in ("", *SIDES):
            raise DataError(f"field {self.name!r}: side {self.side!r} is not 'user' or 'item'")
        if self.side and self.kind != "categorical":
            raise DataError(f"field {self.name!r}: side applies to categorical fields only")
        if self.buckets and (self.kind != "numeric" or self.buckets < 2):
            raise DataError(
                f"field {self.name!r}: buckets={self.buckets} needs kind 'numeric' and >= 2"
            )

    @property
    def source(self) -> str:
        """The column read: `column`, or `name` when `column` is empty."""
        return self.column or self.name

    @property
    def is_cat(self) -> bool:
        """Whether the field is a column of "cat" (categorical, or bucketised numeric)."""
        return self.kind == "categorical" or (self.kind == "numeric" and self.buckets > 0)


def default_ctr_fields(ds: Dataset, *, year_buckets: int = 0) -> list[FieldSpec]:
    """RecBole's ml-100k CTR features, for MovieLens-like data.

    user_id, item_id, then whichever of age, gender, occupation (user), year (numeric) and
    genres (multi-hot) the data set has: RecBole's (user_id, item_id, age, gender, occupation,
    release_year, genres).

    Args:
      ds: the data set whose columns decide which fields exist.
      year_buckets: when >= 2, also a bucketised "year_bucket" field with that many buckets.
    """
    fields = [FieldSpec(USER_ID, "categorical"), FieldSpec(ITEM_ID, "categorical")]
    fields += [
        FieldSpec(c, "categorical", side="user")
        for c in ("age", "gender", "occupation")
        if c in ds.user_features
    ]
    if "year" in ds.item_numeric:
        fields.append(FieldSpec("year", "numeric"))
        if year_buckets:
            fields.append(FieldSpec("year_bucket", "numeric", column="year", buckets=year_buckets))
    if "genres" in ds.item_multi_hot:
        fields.append(FieldSpec("genres", "multi_hot"))
    return fields


# -- reading columns ---------------------------------------------------------------------------


def _categorical_column(ds: Dataset, f: FieldSpec, side: str = "") -> tuple[str, np.ndarray]:
    """(side, [U] or [I] str values) of a categorical field in `ds`.

    `side` (or else `f.side`) restricts the search to one side; "" searches both.
    """
    col, want = f.source, side or f.side
    if col == USER_ID and want in ("", "user"):
        return "user", ds.user_ids
    if col == ITEM_ID and want in ("", "item"):
        return "item", ds.item_ids
    found = [
        (s, table[col])
        for s, table in (("user", ds.user_features), ("item", ds.item_categorical))
        if col in table and want in ("", s)
    ]
    if len(found) == 1:
        return found[0]
    if found:
        raise DataError(
            f"field {f.name!r}: column {col!r} is both a user and an item column of "
            f"{ds.name!r}; set side='user' or side='item'"
        )
    raise DataError(
        f"field {f.name!r}: {ds.name!r} has no categorical column {col!r}; user columns "
        f"{sorted(ds.user_features)}, item columns {sorted(ds.item_categorical)}, or "
        f"{USER_ID!r} / {ITEM_ID!r}"
    )


def _ragged_column(ds: Dataset, f: FieldSpec) -> Ragged:
    if f.source == ITEM_TAGS and ds.item_tags is not None:
        return ds.item_tags
    if f.source in ds.item_multi_hot:
        return ds.item_multi_hot[f.source]
    raise DataError(
        f"field {f.name!r}: {ds.name!r} has no multi-hot item column {f.source!r}; it has "
        f"{sorted(ds.item_multi_hot)}" + (f" and {ITEM_TAGS!r}" if ds.item_tags is not None else "")
    )


def _numeric_column(ds: Dataset, f: FieldSpec) -> np.ndarray:
    if f.source not in ds.item_numeric:
        raise DataError(
            f"field {f.name!r}: {ds.name!r} has no numeric item column {f.source!r}; it has "
            f"{sorted(ds.item_numeric)}"
        )
    return ds.item_numeric[f.source]


def _lookup(vocab: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Local ids of `values` in a sorted vocabulary: 1 + position, 0 when absent.

    Args:
      vocab: [V] sorted str.
      values: [n] str.

    Returns:
      [n] int64 in [0, V].
    """
    if vocab.size == 0:
        return np.zeros(values.shape, dtype=np.int64)
    pos = np.searchsorted(vocab, values)
    hit = vocab[np.minimum(pos, vocab.size - 1)] == values
    return np.where(hit, pos + 1, 0)


def _vocabulary(values: np.ndarray) -> np.ndarray:
    """Sorted distinct non-missing values: [V] str ("" is missing, never a vocabulary entry)."""
    vocab = np.unique(values.astype(np.str_))
    return vocab[vocab != ""]


# -- the fitted state of one field -------------------------------------------------------------


@dataclasses.dataclass
class _Field:
    """What `fit` learned about one field; arrays go to the .npz, the rest to the JSON."""

    spec: FieldSpec
    side: str = "item"  # "user" for a user-side categorical field
    offset: int = 0  # first id in the shared vocabulary (categorical, multi-hot, buckets)
    size: int = 0  # ids owned, the reserved id 0 included
    vocab: np.ndarray | None = None  # [V] sorted str, local ids 1..V
    multi_len: int = 0  # the longest item row at fit time (multi-hot)
    mean: float = 0.0  # numeric standardisation
    std: float = 1.0
    edges: np.ndarray | None = None  # [E] float64 bucket edges (bucketised numeric)
    dim: int = 0  # dense width
    dense_ids: np.ndarray | None = None  # [I'] str raw item ids of an external dense array
    dense_values: np.ndarray | None = None  # [I', D] float32 external dense array

    _ARRAYS = ("vocab", "edges", "dense_ids", "dense_values")

    def meta(self) -> dict:
        return {
            "spec": dataclasses.asdict(self.spec),
            "side": self.side,
            "offset": self.offset,
            "size": self.size,
            "multi_len": self.multi_len,
            "mean": self.mean,
            "std": self.std,
            "dim": self.dim,
        }

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {
            f"{prefix}{k}": getattr(self, k) for k in self._ARRAYS if getattr(self, k) is not None
        }

    @classmethod
    def from_saved(cls, meta: dict, arrays: dict[str, np.ndarray], prefix: str) -> _Field:
        kwargs = {k: meta[k] for k in ("side", "offset", "size", "multi_len", "mean", "std", "dim")}
        kwargs.update({k: arrays[f"{prefix}{k}"] for k in cls._ARRAYS if f"{prefix}{k}" in arrays})
        return cls(spec=FieldSpec(**meta["spec"]), **kwargs)


def _fit_field(
    train: Dataset,
    f: FieldSpec,
    item_arrays: dict[str, np.ndarray],
    seen_users: np.ndarray,
    seen_items: np.ndarray,
) -> _Field:
    """Learns one field's vocabulary or statistics from the training interactions.

    Args:
      seen_users, seen_items: [U'] and [I'] int, the distinct users and items of `train`.
    """
    if f.kind == "categorical":
        side, values = _categorical_column(train, f)
        vocab = _vocabulary(values[seen_users if side == "user" else seen_items])
        return _Field(f, side=side, size=vocab.size + 1, vocab=vocab)
    if f.kind == "multi_hot":
        rag = _ragged_column(train, f)
        in_train = np.zeros(train.num_items, dtype=bool)
        in_train[seen_items] = True
        vocab = _vocabulary(rag.values[in_train[rag.row_ids()]])
        longest = int(rag.lengths().max(initial=0))
        return _Field(f, size=vocab.size + 1, vocab=vocab, multi_len=longest)
    if f.kind == "numeric":
        # Statistics of the training examples, so that the model's inputs are standardised
        # over what it trains on (an item counts once per interaction).
        x = _numeric_column(train, f)[train.items].astype(np.float64)
        x = x[~np.isnan(x)]
        if f.buckets:
            qs = np.linspace(0.0, 1.0, f.buckets + 1)[1:-1]
            edges = np.unique(np.quantile(x, qs)) if x.size else np.zeros(0)
            return _Field(f, size=edges.size + 2, edges=edges)
        mean = float(x.mean()) if x.size else 0.0
        std = float(x.std()) if x.size else 0.0
        return _Field(f, mean=mean, std=std if std > 0 else 1.0)
    if f.source == ITEM_VECTORS:
        if train.item_vectors is None:
            raise DataError(f"field {f.name!r}: {train.name!r} has no item_vectors")
        return _Field(f, dim=int(train.item_vectors.shape[1]))
    if f.source not in item_arrays:
        raise DataError(
            f"field {f.name!r}: dense column {f.source!r} is neither {ITEM_VECTORS!r} nor a key "
            f"of item_arrays {sorted(item_arrays)}"
        )
    values = np.asarray(item_arrays[f.source])
    if values.ndim != 2 or values.shape[0] != train.num_items or not np.all(np.isfinite(values)):
        raise DataError(
            f"field {f.name!r}: item_arrays[{f.source!r}] must be a finite [I={train.num_items}, "
            f"D] array, got shape {values.shape}"
        )
    return _Field(
        f,
        dim=int(values.shape[1]),
        dense_ids=train.item_ids.astype(np.str_),
        dense_values=values.astype(np.float32),
    )


# -- side-information tables -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Tables:
    """Encoded rows of every user and item of one data set, plus a last "unknown" row.

    Attributes:
      user_cat: [U + 1, Fcu] int32 global ids of the user-side categorical fields.
      item_cat: [I + 1, Fci] int32 global ids of the item-side categorical fields.
      multi: [I + 1, Fm, L] int32; multi_mask: [I + 1, Fm, L] float32.
      num: [I + 1, Fn] float32; dense: [I + 1, Dd] float32.
    """

    user_cat: np.ndarray
    item_cat: np.ndarray
    multi: np.ndarray
    multi_mask: np.ndarray
    num: np.ndarray
    dense: np.ndarray


def _multi_hot_rows(
    fld: _Field, rag: Ragged, num_items: int, length: int
) -> tuple[np.ndarray, np.ndarray]:
    """[I, L] int32 global ids and [I, L] float32 mask of one multi-hot field."""
    local = _lookup(fld.vocab, rag.values)
    known = local > 0
    rows = rag.row_ids()[known]  # non-decreasing
    counts = np.bincount(rows, minlength=num_items)
    slot = np.arange(rows.size) - np.repeat(np.cumsum(counts) - counts, counts)
    keep = slot < length  # the first L known tokens of each row
    ids = np.full((num_items, length), fld.offset, dtype=np.int32)
    mask = np.zeros((num_items, length), dtype=np.float32)
    ids[rows[keep], slot[keep]] = fld.offset + local[known][keep]
    mask[rows[keep], slot[keep]] = 1.0
    return ids, mask


def _dense_rows(fld: _Field, ds: Dataset) -> np.ndarray:
    """[I, D] float32 vectors of one dense field for the items of `ds`; zeros where unknown."""
    if fld.spec.source == ITEM_VECTORS:
        vec = ds.item_vectors
        if vec is None or vec.shape[1] != fld.dim:
            got = "none" if vec is None else f"{vec.shape[1]}-d"
            raise DataError(
                f"field {fld.spec.name!r}: {ds.name!r} must have {fld.dim}-d item_vectors, "
                f"got {got}"
            )
        return vec.astype(np.float32)
    order = np.argsort(fld.dense_ids, kind="stable")
    local = _lookup(fld.dense_ids[order], ds.item_ids.astype(np.str_))
    table = np.concatenate([np.zeros((1, fld.dim), np.float32), fld.dense_values[order]])
    return table[local]


# -- the encoder -------------------------------------------------------------------------------


class FeatureEncoder:
    """Encodes interactions and (user, item) pairs into CTR batches (see `schema.py`).

    Build with `FeatureEncoder.fit` or `FeatureEncoder.load`; `spec` tells the model its sizes.
    """

    def __init__(self, fields: Sequence[_Field]) -> None:
        """Internal: use `fit` or `load`."""
        self._fields = list(fields)
        self._groups = self._by_group()
        self._multi_len = max([1, *(fld.multi_len for fld in self._groups["multi"])])
        # "cat" is gathered as [user-side columns, item-side columns]; this puts the columns
        # back in declaration order (None when they already are, the usual case).
        sides = [fld.side for fld in self._groups["cat"]]
        perm = np.argsort([s != "user" for s in sides], kind="stable")
        self._cat_order = None if np.all(perm == np.arange(perm.size)) else np.argsort(perm)
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
        fitted = [
            _fit_field(train, f, dict(item_arrays or {}), seen_users, seen_items) for f in fields
        ]
        offset = 0
        for fld in fitted:
            if fld.size:
                fld.offset = offset
                offset += fld.size
        return cls(fitted)

    # -- what the model needs ------------------------------------------------------------------

    @property
    def fields(self) -> tuple[FieldSpec, ...]:
        """The declared fields, in declaration order."""
        return tuple(fld.spec for fld in self._fields)

    @property
    def spec(self) -> FeatureSpec:
        """Sizes of the encoded groups, for building the model's tables."""
        by_kind = self._groups
        return FeatureSpec(
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
        """(mean, std) of a standardised numeric field."""
        fld = self._field(name)
        if fld.spec.kind != "numeric" or fld.spec.buckets:
            raise DataError(f"field {name!r} is not a standardised numeric field")
        return fld.mean, fld.std

    def _field(self, name: str) -> _Field:
        for fld in self._fields:
            if fld.spec.name == name:
                return fld
        raise DataError(f"unknown feature field {name!r}; fields are {[*self.fields]}")

    def _by_group(self) -> dict[str, list[_Field]]:
        groups: dict[str, list[_Field]] = {"cat": [], "multi": [], "num": [], "dense": []}
        for fld in self._fields:
            s = fld.spec
            if s.is_cat:
                groups["cat"].append(fld)
            elif s.kind == "multi_hot":
                groups["multi"].append(fld)
            elif s.kind == "numeric":
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
    ) -> Batch:
        """Encodes every interaction of `ds` (N = ds.num_interactions).

        Args:
          ds: interactions with side information (a part of the split `fit` saw, or another
            load of the source: values are matched by raw string).
          label: a threshold (label = rating >= threshold) or a function of `ds` returning
            [N] labels (e.g. from `ds.extra["watch_ratio"]`).

        Returns:
          The batch of `schema.py`: "cat" [N, Fc] int32, "multi" [N, Fm, L] int32,
          "multi_mask" [N, Fm, L] float32, "num" [N, Fn] float32, "dense" [N, Dd] float32,
          "label" [N] float32, "weight" [N] float32 (ones).
        """
        batch = self._gather(self._tables(ds), ds.users, ds.items)
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

    def _gather(self, t: _Tables, u: np.ndarray, i: np.ndarray) -> Batch:
        """The batch of users `u` [N] and items `i` [N] (row indices of the tables)."""
        n = u.shape[0]
        cat = np.concatenate([t.user_cat[u], t.item_cat[i]], axis=1)  # [N, Fc]
        if self._cat_order is not None:
            cat = cat[:, self._cat_order]
        return {
            "cat": cat,
            "multi": t.multi[i],
            "multi_mask": t.multi_mask[i],
            "num": t.num[i],
            "dense": t.dense[i],
            "weight": np.ones(n, dtype=np.float32),
        }

    def _tables(self, ds: Dataset) -> _Tables:
        """The row tables of `ds`, cached by the identity of the side information they read."""
        sources: list[object] = [ds.user_ids, ds.item_ids]
        for fld in self._fields:
            s = fld.spec
            if s.kind == "categorical":
                sources.append(_categorical_column(ds, s, fld.side)[1])
            elif s.kind == "multi_hot":
                sources.append(_ragged_column(ds, s))
            elif s.kind == "numeric":
                sources.append(_numeric_column(ds, s))
            else:
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
            s = fld.spec
            if s.kind == "numeric":
                x = _numeric_column(ds, s).astype(np.float64)
                local = np.searchsorted(fld.edges, x, side="right") + 1
                ids = np.where(np.isnan(x), 0, local)
            else:
                ids = _lookup(fld.vocab, _categorical_column(ds, s, fld.side)[1].astype(np.str_))
            cols = user_cols if fld.side == "user" else item_cols
            # The last row is the unknown user or item: the field's reserved id.
            cols.append(np.r_[fld.offset + ids, fld.offset].astype(np.int32))
        multi = np.zeros((ni + 1, len(groups["multi"]), length), dtype=np.int32)
        mask = np.zeros((ni + 1, len(groups["multi"]), length), dtype=np.float32)
        for k, fld in enumerate(groups["multi"]):
            multi[:, k, :] = fld.offset
            multi[:ni, k, :], mask[:ni, k, :] = _multi_hot_rows(
                fld, _ragged_column(ds, fld.spec), ni, length
            )
        num = np.zeros((ni + 1, len(groups["num"])), dtype=np.float32)
        for k, fld in enumerate(groups["num"]):
            z = (_numeric_column(ds, fld.spec).astype(np.float64) - fld.mean) / fld.std
            num[:ni, k] = np.nan_to_num(z, nan=0.0)
        dense_parts = [_dense_rows(fld, ds) for fld in groups["dense"]]
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
            fields = [_Field.from_saved(m, arrays, f"f{k}_") for k, m in enumerate(meta["fields"])]
        except (KeyError, TypeError, ValueError, OSError) as e:
            raise DataError(f"{path}: malformed feature encoder ({e!r})") from None
        return cls(fields)


def _stack_columns(cols: list[np.ndarray], rows: int) -> np.ndarray:
    """[rows, len(cols)] int32 from per-field columns (a [rows, 0] table when there are none)."""
    if not cols:
        return np.zeros((rows, 0), dtype=np.int32)
    return np.stack(cols, axis=1)
