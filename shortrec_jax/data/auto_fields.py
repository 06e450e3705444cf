"""The CTR feature set of a config, resolved against the data set it trains on.

`config.data` declares five field groups besides the user and item ids. Each is either a
tuple of column names or `("auto",)`, "what the data set has":

  user_fields       categorical user columns (`Dataset.user_features`)
  item_categorical  categorical item columns (`Dataset.item_categorical`)
  item_multi_hot    multi-hot item columns (`Dataset.item_multi_hot`; also "item_tags")
  item_numeric      numeric item columns (`Dataset.item_numeric`)
  item_dense        "item_vectors" (`Dataset.item_vectors`)

Besides these, `statistics` and `histories` add the fields fitted on the training log
(`log_fields`, `data/log_fields.py`).

`auto` takes every column of the group, except a categorical column with fewer than 2 or more
than `rows / 2` distinct values: a constant says nothing, and a column that nearly tells the
rows apart (ml-100k's zip codes: 795 values for 943 users) identifies the user or item rather
than describing it, which the id field already does. On ml-100k `auto` gives RecBole's CTR
features (age, gender, occupation, year, genres). A column named explicitly that the data set
lacks is a one-line error naming the columns it has.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shortrec_jax.data.dataset import DataError, Dataset
from shortrec_jax.data.fields import ITEM_ID, ITEM_TAGS, ITEM_VECTORS, USER_ID, FieldSpec
from shortrec_jax.io import write_json_atomic

AUTO = "auto"
GROUPS = ("user_fields", "item_categorical", "item_multi_hot", "item_numeric", "item_dense")
# The file of the run directory that records the resolved feature set.
FIELDS_FILE = "fields.json"


def content_sources(ds: Dataset) -> list[str]:
    """The item content sources `ds` has, of those content methods and recallers read:
    "genres", "tags" (item_tags), "kg" (triples linked to items), "vectors" (item_vectors)."""
    out = []
    if ds.genres() is not None:
        out.append("genres")
    if ds.item_tags is not None:
        out.append("tags")
    if ds.kg_triples is not None and ds.item_entities is not None:
        out.append("kg")
    if ds.item_vectors is not None:
        out.append("vectors")
    return out


def _informative(column: np.ndarray) -> bool:
    distinct = np.unique(column[column != ""]).size
    return 2 <= distinct <= column.size / 2


def available(ds: Dataset) -> dict[str, tuple[list[str], list[str]]]:
    """Per group: (the columns `auto` takes, every column an explicit name may use)."""
    tags = [ITEM_TAGS] if ds.item_tags is not None else []
    dense = [ITEM_VECTORS] if ds.item_vectors is not None else []
    return {
        "user_fields": (
            [c for c, v in ds.user_features.items() if _informative(v)],
            list(ds.user_features),
        ),
        "item_categorical": (
            [c for c, v in ds.item_categorical.items() if _informative(v)],
            list(ds.item_categorical),
        ),
        "item_multi_hot": (list(ds.item_multi_hot), [*ds.item_multi_hot, *tags]),
        "item_numeric": (list(ds.item_numeric), list(ds.item_numeric)),
        "item_dense": (dense, dense),
    }


def resolve_group(data: Mapping[str, Any], group: str, ds: Dataset) -> tuple[str, ...]:
    """The columns of one field group: the declared names, or what `auto` finds in `ds`.

    Raises:
      DataError: naming `data.<group>`, the columns the data set lacks and those it has.
    """
    names = tuple(str(n) for n in data[group] or ())
    auto, allowed = available(ds)[group]
    if AUTO in names:
        if names != (AUTO,):
            raise DataError(f"data.{group}={names}: 'auto' stands alone")
        return tuple(auto)
    missing = [n for n in names if n not in allowed]
    if missing:
        raise DataError(
            f"data.{group} names {missing}, which {ds.name!r} lacks; it has {allowed or 'none'} "
            f"(use data.{group}=auto for what the data set has, or data.{group}=none)"
        )
    return names


def resolve_ctr_fields(data: Mapping[str, Any], ds: Dataset) -> list[FieldSpec]:
    """The CTR feature set of `config.data` on data set `ds`: ids, user and item fields.

    Args:
      data: a config's `data` section (the five groups and `numeric_buckets`).
      ds: the data the encoder is fitted on (its columns decide `auto`).
    """
    groups = {g: resolve_group(data, g, ds) for g in GROUPS}
    fields = [FieldSpec(USER_ID, "categorical"), FieldSpec(ITEM_ID, "categorical")]
    fields += [FieldSpec(c, "categorical", side="user") for c in groups["user_fields"]]
    fields += [FieldSpec(c, "categorical", side="item") for c in groups["item_categorical"]]
    buckets = data["numeric_buckets"]
    fields += [FieldSpec(c, "numeric", buckets=buckets) for c in groups["item_numeric"]]
    fields += [FieldSpec(c, "multi_hot") for c in groups["item_multi_hot"]]
    fields += [FieldSpec(c, "dense") for c in groups["item_dense"]]
    return fields + log_fields(data)


def log_fields(data: Mapping[str, Any]) -> list[FieldSpec]:
    """The fields fitted on the training log that `config.data` asks for: `statistics` (with
    `statistics_prior` and `statistics_buckets`) and `histories` (with `history_length`, and
    `history_shares_item_ids`: the bags take the item id field's ids and embeddings),
    likes being ratings >= `label_threshold`.
    """
    threshold = float(data["label_threshold"])
    fields = [
        FieldSpec(
            c,
            "statistic",
            buckets=int(data["statistics_buckets"]),
            threshold=threshold,
            prior=float(data["statistics_prior"]),
        )
        for c in data["statistics"] or ()
    ]
    fields += [
        FieldSpec(
            f"history_{c}",
            "history",
            column=c,
            threshold=threshold,
            length=int(data["history_length"]),
            ids_of=ITEM_ID if data["history_shares_item_ids"] else "",
        )
        for c in data["histories"] or ()
    ]
    return fields


def describe(fields: Sequence[FieldSpec], ds: Dataset) -> str:
    """One line for the log: the resolved fields and their kinds."""
    shown = ", ".join(f"{f.name} ({f.kind})" for f in fields)
    return f"features on {ds.name}: {shown}"


def record_fields(fields: Sequence[FieldSpec], ds: Dataset, workdir: str | Path) -> None:
    """Prints the resolved feature set and writes it to `<workdir>/fields.json`."""
    print(describe(fields, ds), flush=True)
    write_json_atomic(
        Path(workdir) / FIELDS_FILE,
        {"data_set": ds.name, "fields": [{"name": f.name, "kind": f.kind} for f in fields]},
    )


__all__ = [
    "AUTO",
    "FIELDS_FILE",
    "GROUPS",
    "available",
    "content_sources",
    "record_fields",
    "resolve_ctr_fields",
]
