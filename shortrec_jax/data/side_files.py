"""Item and user side files for any source: delimited metadata joined to a data set by id.

A short-video log often comes as one interaction file plus a video metadata file (duration,
category, author, tags, a content vector) and perhaps a user file. A side file is declared in
the config and attached to whatever `config.data.source` loads, so xDeepFM, the content-based
methods, the pipeline and cold start read its columns like any loader's:

  config.data.item_side.path = "videos.csv"       # "" = no side file
  config.data.item_side.id_column = "video_id"    # the header name of the id column
  config.data.item_side.columns = "duration:numeric,category:categorical,tags:multi_hot,sift:dense"
  config.data.item_side.delimiter = ""            # "" detects it from the header row
  config.data.item_side.separator = "|"           # between the values of a multi_hot or
                                                  # dense field: "comedy|music", "0.1|0.7"

or on the command line `--config.data.item_side.columns=duration:numeric,category:categorical`.
The file has a header row. Column kinds and where they land in the `Dataset`:
  categorical  item_categorical[name] (items) or user_features[name] (users); "" = missing.
  multi_hot    item_multi_hot[name], tokens split at `separator`; "" = no token. When the
               source has no item_tags, the multi-hot columns together become item_tags
               (tag-cf, and content with features=tags, read them).
  numeric      item_numeric[name] float32; "" = missing (NaN, imputed by the encoder).
  dense        item_vectors [I, D] float32 (one dense column per data set); "" = zeros.
User side files take categorical columns only (`Dataset.user_features` is categorical).

Missing values and items or users without a row get the reserved unknown id (categorical,
multi-hot), NaN (numeric) or zeros (dense), as for any loader. Rows whose id the interactions
never mention are left out and counted in `Dataset.dropped`. An empty or repeated id, a row
with the wrong number of fields, a non-number in a numeric or dense column, or a column name
the source already has is a `DataError` naming the file and line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
from ml_collections import ConfigDict

from shortrec_jax.data.dataset import DataError, Dataset, Ragged
from shortrec_jax.data.delimited import detect_delimiter
from shortrec_jax.data.sources import load
from shortrec_jax.data.text_table import (
    decode_text,
    parse_header,
    read_file,
    read_table,
    split_first_line,
)

SIDES = ("item", "user")
KINDS = ("categorical", "multi_hot", "numeric", "dense")
USER_KINDS = ("categorical",)


def side_file_config() -> ConfigDict:
    """The config fields of one side file (see the module docstring); path "" = none."""
    config = ConfigDict()
    config.path = ""
    config.id_column = ""
    # "name:kind" entries, comma-separated (a string: ml_collections cannot parse "a:b,c:d"
    # into a tuple on the command line).
    config.columns = ""
    config.delimiter = ""
    config.separator = "|"
    return config


@dataclasses.dataclass(frozen=True)
class SideFile:
    """A declared side file.

    Attributes:
      path: the delimited file, with a header row.
      id_column: the header name of the item (user) id column.
      columns: (header name, kind) of each column to read, kind one of KINDS.
      delimiter: the field separator; "" detects it from the header row.
      separator: the separator inside a multi_hot or dense field.
    """

    path: str
    id_column: str
    columns: tuple[tuple[str, str], ...]
    delimiter: str = ""
    separator: str = "|"

    @classmethod
    def from_config(cls, config: Mapping[str, Any], side: str) -> SideFile:
        """From `config.data.<side>_side`: columns "name:kind,..." (or a tuple of entries)."""
        key = f"data.{side}_side"
        given = config["columns"] or ()
        given = [given] if isinstance(given, str) else list(given)
        entries = [p.strip() for v in given for p in str(v).split(",")]
        columns = []
        for entry in filter(None, entries):
            name, _, kind = entry.rpartition(":")
            allowed = KINDS if side == "item" else USER_KINDS
            if not name or kind not in allowed:
                raise DataError(
                    f"{key}.columns entry {entry!r} must be name:kind with kind in {allowed}"
                )
            columns.append((name.strip(), kind))
        if not config["id_column"]:
            raise DataError(f"{key}.id_column: name the id column of {config['path']}")
        if not columns:
            raise DataError(f"{key}.columns: declare the columns of {config['path']} as name:kind")
        return cls(
            path=str(config["path"]),
            id_column=str(config["id_column"]),
            columns=tuple(columns),
            delimiter=str(config["delimiter"] or ""),
            separator=str(config["separator"] or "|"),
        )


def load_configured(data: ConfigDict) -> Dataset:
    """`config.data.source` loaded with its options, plus the declared side files.

    Args:
      data: a config's `data` section (source, source_options, and optionally item_side and
        user_side).
    """
    ds = load(data.source, **data.source_options.to_dict())
    for side in SIDES:
        key = f"{side}_side"
        # Run directories written before side files existed have no such field.
        if key in data and data[key].path:
            ds = attach_side_file(ds, SideFile.from_config(data[key], side), side)
    return ds


def attach_side_file(ds: Dataset, spec: SideFile, side: str) -> Dataset:
    """`ds` with the columns of one side file added (see the module docstring).

    Args:
      ds: the data set.
      spec: the declared side file.
      side: "item" or "user".

    Returns:
      A new, validated data set.
    """
    if side not in SIDES:
        raise DataError(f"side {side!r} is not one of {SIDES}")
    source = spec.path
    vocab = ds.item_ids if side == "item" else ds.user_ids
    existing = _existing_columns(ds, side)
    for name, _ in spec.columns:
        if name in existing:
            raise DataError(
                f"{source}: column {name!r} is already a {side} column of {ds.name!r}; "
                "rename it in the file to add it"
            )
    dense = [name for name, kind in spec.columns if kind == "dense"]
    if len(dense) > 1 or (dense and ds.item_vectors is not None):
        raise DataError(
            f"{source}: a data set holds one dense vector column (item_vectors); "
            f"got {dense}{' and the source vectors' if ds.item_vectors is not None else ''}"
        )
    table, lines = _read(spec)
    names = [spec.id_column, *(n for n, _ in spec.columns)]
    ids = np.char.strip(table[:, 0])
    rows = _rows_in_vocab(ids, lines, vocab, source)
    known = rows >= 0
    fields: dict[str, Any] = {}
    n = len(vocab)
    for k, (name, kind) in enumerate(spec.columns, start=1):
        values, where = table[known, k], lines[known]
        at = rows[known]
        if kind == "categorical":
            col = np.full(n, "", dtype=object)
            col[at] = np.char.strip(values)
            target = "user_features" if side == "user" else "item_categorical"
            fields.setdefault(target, {})[name] = col.astype(np.str_)
        elif kind == "multi_hot":
            lists: list[list[str]] = [[] for _ in range(n)]
            for i, v in zip(at.tolist(), values.tolist(), strict=True):
                lists[i] = [t.strip() for t in v.split(spec.separator) if t.strip()]
            fields.setdefault("item_multi_hot", {})[name] = Ragged.from_lists(lists)
        elif kind == "numeric":
            col = np.full(n, np.nan, dtype=np.float32)
            col[at] = _numbers(values, where, source, names[k])
            fields.setdefault("item_numeric", {})[name] = col
        else:
            fields["item_vectors"] = _vectors(values, where, at, n, spec, names[k])
    merged: dict[str, Any] = {}
    for target, cols in fields.items():
        merged[target] = cols if target == "item_vectors" else {**getattr(ds, target), **cols}
    if "item_multi_hot" in fields and ds.item_tags is None:
        # Video categories and tags are what item_tags holds (as KuaiRec's loader fills it), so
        # the tag-based methods (tag-cf, content with features=tags) can use them.
        merged["item_tags"] = _pooled(list(fields["item_multi_hot"].values()))
    unmatched = int(np.sum(~known))
    if unmatched:
        reason = f"{side} side file rows whose id has no interaction ({source})"
        merged["dropped"] = {**ds.dropped, reason: unmatched}
    return dataclasses.replace(ds, **merged)


def _pooled(columns: list[Ragged]) -> Ragged:
    """Row i = the tokens of row i of every column, in column order."""
    lists = [[] for _ in range(len(columns[0]))]
    for col in columns:
        for i, row in enumerate(col.to_lists()):
            lists[i] += row
    return Ragged.from_lists(lists)


def _existing_columns(ds: Dataset, side: str) -> set[str]:
    if side == "user":
        return set(ds.user_features)
    return {*ds.item_categorical, *ds.item_multi_hot, *ds.item_numeric}


def _read(spec: SideFile) -> tuple[np.ndarray, np.ndarray]:
    """(the id column and declared columns [N, 1 + C] str, the file line of each row [N])."""
    source = spec.path
    data = read_file(spec.path)
    if not data.strip():
        raise DataError(f"{source}: empty file, expected a header row and one row per id")
    head, body = split_first_line(data)
    delimiter = spec.delimiter or detect_delimiter(
        decode_text(head, source=source, encoding="utf-8", first_line=1), source=source
    )
    wanted = [spec.id_column, *(n for n, _ in spec.columns)]
    header = parse_header(head, source=source, delimiter=delimiter, required=wanted)
    quotechar = '"' if b'"' in body and len(delimiter) == 1 else None
    return read_table(
        body,
        source=source,
        names=header,
        delimiter=delimiter,
        numeric=False,
        first_line=2,
        usecols=[header.index(n) for n in wanted],
        quotechar=quotechar,
    )


def _canonical(raw: str) -> str:
    """A whole-number id in the form integer-id loaders write it ("007", "7.0" -> "7")."""
    try:
        value = float(raw)
    except ValueError:
        return raw
    return str(int(value)) if value.is_integer() and abs(value) <= 2**53 else raw


def _rows_in_vocab(
    ids: np.ndarray, lines: np.ndarray, vocab: np.ndarray, source: str
) -> np.ndarray:
    """[N] int64: the vocabulary index of each side-file row, -1 where the id is not in it.

    An id matches exactly, or in canonical whole-number form (a loader that parsed numeric ids
    writes "7" where a metadata file may say "007").
    """
    table = {v: i for i, v in enumerate(np.asarray(vocab).tolist())}
    out = np.full(ids.size, -1, dtype=np.int64)
    seen: dict[str, int] = {}
    for r, raw in enumerate(ids.tolist()):
        if not raw:
            raise DataError(f"{source}, line {lines[r]}: empty id")
        if raw in seen:
            raise DataError(
                f"{source}, line {lines[r]}: id {raw!r} repeats line {seen[raw]}; one row per id"
            )
        seen[raw] = int(lines[r])
        out[r] = table.get(raw, table.get(_canonical(raw), -1))
    return out


def _numbers(values: np.ndarray, lines: np.ndarray, source: str, column: str) -> np.ndarray:
    """[R] float32 from strings: "" -> NaN; a non-number or infinity is an error."""
    out = np.full(values.size, np.nan, dtype=np.float32)
    for r, v in enumerate(values.tolist()):
        v = v.strip()
        if not v:
            continue
        try:
            x = float(v)
        except ValueError:
            x = np.inf
        if not np.isfinite(x) or abs(x) > np.finfo(np.float32).max:
            raise DataError(
                f"{source}, line {lines[r]}: column {column!r} must be a finite number or empty, "
                f"got {v!r}"
            )
        out[r] = x
    return out


def _vectors(
    values: np.ndarray, lines: np.ndarray, at: np.ndarray, n: int, spec: SideFile, column: str
) -> np.ndarray:
    """[n, D] float32 dense vectors: each field `separator`-joined numbers; "" -> zeros."""
    parsed: list[np.ndarray | None] = []
    width = None
    for r, v in enumerate(values.tolist()):
        if not v.strip():
            parsed.append(None)
            continue
        parts = v.split(spec.separator)
        vec = _numbers(np.asarray(parts), np.full(len(parts), lines[r]), spec.path, column)
        if np.any(np.isnan(vec)):
            raise DataError(
                f"{spec.path}, line {lines[r]}: column {column!r} has an empty entry in {v!r}"
            )
        if width is not None and vec.size != width:
            raise DataError(
                f"{spec.path}, line {lines[r]}: column {column!r} has {vec.size} numbers, "
                f"earlier rows {width}"
            )
        width = vec.size
        parsed.append(vec)
    if width is None:
        raise DataError(f"{spec.path}: column {column!r} has no vector in any matched row")
    out = np.zeros((n, width), dtype=np.float32)
    for i, vec in zip(at.tolist(), parsed, strict=True):
        if vec is not None:
            out[i] = vec
    return out


__all__ = ["KINDS", "SIDES", "SideFile", "attach_side_file", "load_configured", "side_file_config"]
