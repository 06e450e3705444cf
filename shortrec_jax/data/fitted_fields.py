"""What `FeatureEncoder.fit` learns about one field (vocabulary, statistics, dense width),
the field's column of a `Dataset`, lookups of raw values in a vocabulary, and the encoded rows
of one field for every user or item of a `Dataset`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from shortrec_jax.data.dataset import DataError, Dataset, Ragged
from shortrec_jax.data.fields import ITEM_ID, ITEM_TAGS, ITEM_VECTORS, USER_ID, FieldSpec


def categorical_column(ds: Dataset, f: FieldSpec, side: str = "") -> tuple[str, np.ndarray]:
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


def ragged_column(ds: Dataset, f: FieldSpec) -> Ragged:
    if f.source == ITEM_TAGS and ds.item_tags is not None:
        return ds.item_tags
    if f.source in ds.item_multi_hot:
        return ds.item_multi_hot[f.source]
    raise DataError(
        f"field {f.name!r}: {ds.name!r} has no multi-hot item column {f.source!r}; it has "
        f"{sorted(ds.item_multi_hot)}" + (f" and {ITEM_TAGS!r}" if ds.item_tags is not None else "")
    )


def numeric_column(ds: Dataset, f: FieldSpec) -> np.ndarray:
    if f.source not in ds.item_numeric:
        raise DataError(
            f"field {f.name!r}: {ds.name!r} has no numeric item column {f.source!r}; it has "
            f"{sorted(ds.item_numeric)}"
        )
    return ds.item_numeric[f.source]


def local_ids(vocab: np.ndarray, values: np.ndarray) -> np.ndarray:
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


def sorted_vocabulary(values: np.ndarray) -> np.ndarray:
    """Sorted distinct non-missing values: [V] str ("" is missing, never a vocabulary entry)."""
    vocab = np.unique(values.astype(np.str_))
    return vocab[vocab != ""]


@dataclasses.dataclass
class FittedField:
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
    # Fields fitted on the training log (data/log_fields.py):
    keys: np.ndarray | None = None  # [K] sorted str raw user or item ids
    counts: np.ndarray | None = None  # [K] float64 interactions of each key (statistic)
    sums: np.ndarray | None = None  # [K] float64 sum of the statistic's quantity
    global_value: float = 0.0  # the statistic's value over the whole log (its prior)
    offsets: np.ndarray | None = None  # [K + 1] int64 each user's bag in `bag` (history)
    bag: np.ndarray | None = None  # [T] int32 local ids (into `vocab`) of the bags

    _ARRAYS = (
        "vocab",
        "edges",
        "dense_ids",
        "dense_values",
        "keys",
        "counts",
        "sums",
        "offsets",
        "bag",
    )

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
            "global_value": self.global_value,
        }

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {
            f"{prefix}{k}": getattr(self, k) for k in self._ARRAYS if getattr(self, k) is not None
        }

    @classmethod
    def from_saved(cls, meta: dict, arrays: dict[str, np.ndarray], prefix: str) -> FittedField:
        kwargs = {k: meta[k] for k in ("side", "offset", "size", "multi_len", "mean", "std", "dim")}
        # Encoders saved before the log fields existed have no global value (nor such fields).
        kwargs["global_value"] = meta.get("global_value", 0.0)
        kwargs.update({k: arrays[f"{prefix}{k}"] for k in cls._ARRAYS if f"{prefix}{k}" in arrays})
        return cls(spec=FieldSpec(**meta["spec"]), **kwargs)


def fit_field(
    train: Dataset,
    f: FieldSpec,
    item_arrays: dict[str, np.ndarray],
    seen_users: np.ndarray,
    seen_items: np.ndarray,
) -> FittedField:
    """Learns one field's vocabulary or statistics from the training interactions.

    Args:
      seen_users, seen_items: [U'] and [I'] int, the distinct users and items of `train`.
    """
    if f.kind == "categorical":
        side, values = categorical_column(train, f)
        vocab = sorted_vocabulary(values[seen_users if side == "user" else seen_items])
        return FittedField(f, side=side, size=vocab.size + 1, vocab=vocab)
    if f.kind == "multi_hot":
        rag = ragged_column(train, f)
        in_train = np.zeros(train.num_items, dtype=bool)
        in_train[seen_items] = True
        vocab = sorted_vocabulary(rag.values[in_train[rag.row_ids()]])
        longest = int(rag.lengths().max(initial=0))
        return FittedField(f, size=vocab.size + 1, vocab=vocab, multi_len=longest)
    if f.kind == "numeric":
        # Statistics of the training examples, so that the model's inputs are standardised
        # over what it trains on (an item counts once per interaction).
        x = numeric_column(train, f)[train.items].astype(np.float64)
        x = x[~np.isnan(x)]
        if f.buckets:
            qs = np.linspace(0.0, 1.0, f.buckets + 1)[1:-1]
            edges = np.unique(np.quantile(x, qs)) if x.size else np.zeros(0)
            return FittedField(f, size=edges.size + 2, edges=edges)
        mean = float(x.mean()) if x.size else 0.0
        std = float(x.std()) if x.size else 0.0
        return FittedField(f, mean=mean, std=std if std > 0 else 1.0)
    if f.source == ITEM_VECTORS:
        if train.item_vectors is None:
            raise DataError(f"field {f.name!r}: {train.name!r} has no item_vectors")
        return FittedField(f, dim=int(train.item_vectors.shape[1]))
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
    return FittedField(
        f,
        dim=int(values.shape[1]),
        dense_ids=train.item_ids.astype(np.str_),
        dense_values=values.astype(np.float32),
    )


def categorical_rows(fld: FittedField, ds: Dataset) -> np.ndarray:
    """[U + 1] or [I + 1] int32 global ids of one categorical (or bucketised numeric) field
    for the users or items of `ds`; the last row is the unknown user or item."""
    s = fld.spec
    if s.kind == "numeric":
        x = numeric_column(ds, s).astype(np.float64)
        local = np.searchsorted(fld.edges, x, side="right") + 1
        ids = np.where(np.isnan(x), 0, local)
    else:
        ids = local_ids(fld.vocab, categorical_column(ds, s, fld.side)[1].astype(np.str_))
    # The last row is the unknown user or item: the field's reserved id.
    return np.r_[fld.offset + ids, fld.offset].astype(np.int32)


def multi_hot_rows(
    fld: FittedField, rag: Ragged, num_items: int, length: int
) -> tuple[np.ndarray, np.ndarray]:
    """[I, L] int32 global ids and [I, L] float32 mask of one multi-hot field."""
    local = local_ids(fld.vocab, rag.values)
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


def dense_rows(fld: FittedField, ds: Dataset) -> np.ndarray:
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
    local = local_ids(fld.dense_ids[order], ds.item_ids.astype(np.str_))
    table = np.concatenate([np.zeros((1, fld.dim), np.float32), fld.dense_values[order]])
    return table[local]
