"""Generic delimited interaction files (CSV/TSV) with a declared column layout.

`load_delimited` reads one interaction file, e.g. the "user item" per line, time-ordered
files of sequential-recommendation papers, or a CSV with a header row such as
`userId,movieId,rating,timestamp`. The table itself is read by `data/text_table.py`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from shortrec_jax.data.build import build_dataset, parse_float_column
from shortrec_jax.data.dataset import DataError, Dataset
from shortrec_jax.data.ids import canonical_ids, integer_ids
from shortrec_jax.data.text_table import (
    decode_text,
    parse_header,
    read_file,
    read_table,
    require_rows,
    split_first_line,
    strip_bom,
)

# Delimiters tried, in order, when none is given: "::" before ":"-free ones, tab before comma
# (a TSV may hold commas in titles), comma before space.
AUTO_DELIMITERS = ("::", "\t", ",", " ")
ROLES = ("user", "item", "rating", "timestamp")


def detect_delimiter(line: str, *, source: str) -> str:
    """The first of AUTO_DELIMITERS that occurs in `line` (a header or the first row)."""
    for d in AUTO_DELIMITERS:
        if d in line:
            return d
    raise DataError(
        f"{source}, line 1: cannot tell the delimiter of {line[:80]!r}; expected one of "
        f"{AUTO_DELIMITERS}, or pass delimiter="
    )


def load_delimited(
    path: str | os.PathLike[str],
    *,
    columns: Sequence[str] | Mapping[str, str | int] = ("user", "item"),
    delimiter: str | None = None,
    header: bool | None = None,
    rating_column: str | int | None = None,
    timestamp_column: str | int | None = None,
    duplicates: str = "last",
    rating_range: tuple[float, float] | None = None,
    encoding: str = "utf-8",
    name: str | None = None,
    strip_ids: bool = True,
) -> Dataset:
    """Loads one delimited interaction file with a declared column layout.

    Two ways to declare the layout:
      * `columns` as a sequence names every field of a row in order; fields named "user",
        "item", "rating" and "timestamp" are used, any other name is skipped. The default
        ("user", "item") is the time-ordered "user item" per line form of sequential-
        recommendation data sets.
      * `columns` as a mapping from role ("user", "item", "rating", "timestamp") to a header
        name (str) or a 0-based position (int), e.g. {"user": "userId", "item": "movieId"}.
    `rating_column` / `timestamp_column` name the rating / timestamp column the same way when
    `columns` does not.

    Without a rating column every rating is 1.0 (implicit feedback). Without a timestamp column
    the timestamp of a row is its 0-based row number, so the file order is the time order
    (sequential models and `duplicates="last"` rely on it). Ids are kept as strings, without
    surrounding whitespace unless `strip_ids=False` (so "1, 10" and "1,10" name one item). A
    UTF-8 byte-order mark at the start of the file is dropped. A file with no rows (empty,
    blank, or a header row alone) is refused.

    Args:
      path: the file.
      columns: the layout, as above.
      delimiter: the field separator; None detects the first of AUTO_DELIMITERS in the first
        line.
      header: whether the first line is a header row; None means True exactly when a column is
        named by a header name.
      rating_column, timestamp_column: see above.
      duplicates: the policy for repeated (user, item) pairs (see build.DUPLICATE_POLICIES).
      rating_range: inclusive bounds checked on every rating.
      encoding: the text encoding.
      name: the data set's name; by default the file name without its extension.
      strip_ids: drop spaces and tabs around user and item ids.

    Returns:
      The data set.
    """
    source = str(path)
    roles = _roles(columns, rating_column, timestamp_column, source=source)
    if header is None:
        header = isinstance(columns, Mapping) and any(isinstance(c, str) for c in roles.values())
    data = read_file(path)
    expected = ", ".join(roles)
    require_rows(data, source=source, expected=expected)
    first, rest = split_first_line(data)
    first_text = decode_text(first, source=source, encoding=encoding, first_line=1)
    if delimiter is None:
        delimiter = detect_delimiter(first_text, source=source)
    body, first_line = (rest, 2) if header else (data, 1)
    require_rows(body, source=source, expected=expected)
    if not isinstance(columns, Mapping):
        names = list(columns)
    elif header:
        names = parse_header(first, source=source, delimiter=delimiter, encoding=encoding)
    else:
        names = [f"field {j}" for j in range(len(first_text.split(delimiter)))]
    positions = _positions(roles, names, source=source, header=header)
    if isinstance(columns, Mapping) and not header:
        for role, j in positions.items():
            names[j] = role
    # Parsing quotes costs time, so it is switched on only for a file that has some.
    quotechar = '"' if b'"' in body and len(delimiter) == 1 else None
    values, lines = read_table(
        body,
        source=source,
        names=names,
        delimiter=delimiter,
        numeric=False,
        first_line=first_line,
        usecols=list(positions.values()),
        encoding=encoding,
        quotechar=quotechar,
    )
    col = {role: values[:, k] for k, role in enumerate(positions)}
    if strip_ids:
        col["user"], col["item"] = np.char.strip(col["user"]), np.char.strip(col["item"])

    def number(role: str) -> np.ndarray:
        return parse_float_column(
            col[role], source=source, column=names[positions[role]], line_numbers=lines
        )

    n = values.shape[0]
    return build_dataset(
        name or Path(path).name.split(".")[0],
        col["user"],
        col["item"],
        number("rating") if "rating" in col else np.ones(n),
        number("timestamp") if "timestamp" in col else np.arange(n, dtype=np.int64),
        source=source,
        duplicates=duplicates,
        rating_range=rating_range,
        line_numbers=lines,
    )


def _roles(
    columns: Sequence[str] | Mapping[str, str | int],
    rating_column: str | int | None,
    timestamp_column: str | int | None,
    *,
    source: str,
) -> dict[str, str | int]:
    """Role -> header name, field name or position, from the declared layout."""
    if isinstance(columns, str):
        raise DataError(f"columns={columns!r}: expected a sequence of names or a mapping")
    if isinstance(columns, Mapping):
        roles = dict(columns)
        unknown = [r for r in roles if r not in ROLES]
        if unknown:
            raise DataError(f"columns: unknown role(s) {unknown}; expected roles in {ROLES}")
    else:
        if len(set(columns)) != len(columns):
            raise DataError(f"columns={tuple(columns)} repeats a name")
        roles = {c: c for c in columns if c in ROLES}
    for role, given in (("rating", rating_column), ("timestamp", timestamp_column)):
        if given is None:
            continue
        if role in roles:
            raise DataError(f"{role}_column={given!r}: columns= already names the {role} column")
        roles[role] = given
    missing = [r for r in ("user", "item") if r not in roles]
    if missing:
        raise DataError(f"{source}: columns= must name the {' and '.join(missing)} column")
    return roles


def _positions(
    roles: Mapping[str, str | int], names: Sequence[str], *, source: str, header: bool
) -> dict[str, int]:
    """Role -> 0-based field position, checked against the names of a row's fields."""
    out = {}
    for role, col in roles.items():
        if isinstance(col, int):
            if not 0 <= col < len(names):
                raise DataError(
                    f"{source}: the {role} column position {col} is outside the {len(names)} "
                    f"fields of a row ({', '.join(names)})"
                )
            out[role] = col
        elif col in names:
            out[role] = names.index(col)
        elif header:
            raise DataError(f"{source}, line 1: no column {col!r} in the header {list(names)}")
        else:
            raise DataError(
                f"{source}: no field named {col!r} among {list(names)}; a mapping that names "
                "columns needs header=True"
            )
    return out


__all__ = [
    "AUTO_DELIMITERS",
    "canonical_ids",
    "decode_text",
    "detect_delimiter",
    "integer_ids",
    "load_delimited",
    "parse_header",
    "read_file",
    "read_table",
    "require_rows",
    "split_first_line",
    "strip_bom",
]
