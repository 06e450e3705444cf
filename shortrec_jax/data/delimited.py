"""Delimited text files: the fast table reader every text loader uses, and generic CSV/TSV.

`read_table` turns the bytes of a delimited file into a NumPy table with NumPy's C parser
(`np.loadtxt`), a chunk at a time, so that a 25-million-row ratings file never becomes
25 million Python objects. When the C parser refuses a chunk, that chunk alone is scanned
line by line to name the file, line and column of the first bad row.

`load_delimited` reads one interaction file with a declared column layout, e.g. the
"user item" per line, time-ordered files of sequential-recommendation papers, or a CSV with a
header row such as `userId,movieId,rating,timestamp`.
"""

from __future__ import annotations

import csv
import io
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from shortrec_jax.data.build import build_dataset, parse_float_column
from shortrec_jax.data.dataset import DataError, Dataset

# The C parser takes one delimiter character; a multi-character delimiter ("::" of ml-1m) is
# replaced by this control character, which never occurs in the text files read here.
_SUBSTITUTE = "\x1f"
# Chunk size: large enough that per-chunk overhead is negligible, small enough that the
# decoded text of one chunk (4 bytes per character at worst) stays far below memory limits.
_CHUNK_BYTES = 1 << 24
# Delimiters tried, in order, when none is given: "::" before ":"-free ones, tab before comma
# (a TSV may hold commas in titles), comma before space.
AUTO_DELIMITERS = ("::", "\t", ",", " ")
ROLES = ("user", "item", "rating", "timestamp")
# The largest whole number up to which float64 holds every integer exactly.
_MAX_EXACT_ID = 2**53
# A UTF-8 byte-order mark, which some editors write at the start of a file.
_BOM = b"\xef\xbb\xbf"
# A whole-number id as written: optional spaces and sign, decimal digits.
_INTEGER_ID = re.compile(r"\s*[+-]?[0-9]+\s*")
# A zero fraction ("7.0", "7."), which side files may write after a whole-number id.
_WHOLE_ZERO = re.compile(r"(?<=[0-9])\.0*$")


def read_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a file without a leading UTF-8 byte-order mark, or a DataError naming it."""
    try:
        return strip_bom(Path(path).read_bytes())
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e})") from None


def strip_bom(data: bytes) -> bytes:
    """`data` without a leading UTF-8 byte-order mark: it would otherwise become part of the
    first id or header name ("\\ufeff1" and "1" would be two users)."""
    return data[len(_BOM) :] if data.startswith(_BOM) else data


def require_rows(body: bytes, *, source: str, expected: str) -> None:
    """Refuses a file with no rows: empty, blank, or a header row alone (one rule for all)."""
    if not body.strip():
        raise DataError(f"{source}: empty file (no rows), expected rows with {expected}")


def split_first_line(data: bytes) -> tuple[bytes, bytes]:
    """(first line without its newline, the rest), for files with a header row."""
    head, _, rest = data.partition(b"\n")
    return head.rstrip(b"\r"), rest


def parse_header(
    line: bytes,
    *,
    source: str,
    delimiter: str,
    required: Sequence[str] = (),
    encoding: str = "utf-8",
) -> list[str]:
    """Splits a header row and checks that it names every required column.

    Returns:
      The column names, in file order (surrounding quotes and spaces removed).
    """
    text = decode_text(line, source=source, encoding=encoding, first_line=1)
    names = [n.strip().strip('"') for n in text.split(delimiter)]
    missing = [r for r in required if r not in names]
    if missing:
        hint = f" (is the file separated by {delimiter!r}?)" if len(names) == 1 else ""
        raise DataError(
            f"{source}, line 1: missing column(s) {missing} in the header {names}{hint}"
        )
    return names


def read_table(
    data: bytes,
    *,
    source: str,
    names: Sequence[str],
    delimiter: str,
    numeric: bool,
    first_line: int = 1,
    usecols: Sequence[int] | None = None,
    encoding: str = "utf-8",
    quotechar: str | None = None,
    empty_as_nan: bool = False,
    int_columns: Sequence[int] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """Parses delimited rows into a table; empty lines are skipped.

    Args:
      data: the file's bytes after any header row.
      source: the file name, for messages.
      names: the name of every field of a row, in order; a row must have exactly this many.
      delimiter: the field separator (any length; `"::"` is allowed).
      numeric: parse the fields as float64 (else keep them as str).
      first_line: the file line of the first line of `data` (2 after a header row).
      usecols: indices into `names` of the fields to return (default all).
      encoding: the text encoding of `data`.
      quotechar: fields may be quoted with this character (and then hold the delimiter); a
        quoted field may not span lines. Needs a one-character ASCII `delimiter`.
      empty_as_nan: with `numeric`, an empty field is NaN instead of an error.
      int_columns: with `numeric`, indices into `names` (among `usecols`) of whole-number id
        fields: they are parsed as integers, never through a float, and refused beyond
        2**53 in magnitude, so the float64 table holds them exactly.

    Returns:
      (values [N, C] float64 or str, lines [N] int64: the file line of each row), where C is
      `len(usecols)`.

    Raises:
      DataError: naming the file and line of a row with the wrong number of fields (and that
        the delimiter seems wrong when a row has one field), a non-number where a number is
        expected, or bytes that are not `encoding` text.
    """
    int_columns = tuple(int_columns)
    if int_columns and not numeric:
        raise ValueError("int_columns needs numeric=True")
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
    width = len(names)
    cols = tuple(range(width)) if usecols is None else tuple(usecols)
    parser_delimiter = _SUBSTITUTE if len(delimiter) > 1 else delimiter
    blocks: list[np.ndarray] = []
    lines: list[np.ndarray] = []
    line = first_line
    for start, end in _chunks(data):
        raw = data[start:end]
        chunk_line, line = line, line + raw.count(b"\n")
        row_lines = _nonempty_lines(raw, chunk_line)
        if row_lines.size == 0:
            continue
        decoded = decode_text(raw, source=source, encoding=encoding, first_line=chunk_line)
        text = decoded.replace(delimiter, _SUBSTITUTE) if len(delimiter) > 1 else decoded
        if numeric and empty_as_nan:
            text = _fill_empty(text, parser_delimiter)
        # The parser reads only the columns in use and ignores extra fields, so the field
        # count of every row is checked by counting the delimiters (outside quotes).
        block, problem = _parse_chunk(text, parser_delimiter, numeric, cols, quotechar, int_columns)
        if block is not None and (
            block.shape[0] != row_lines.size
            or _count_delimiters(raw, text, parser_delimiter, quotechar)
            != row_lines.size * (width - 1)
        ):
            block = None
        if block is None:
            _diagnose(
                decoded,
                source=source,
                first_line=chunk_line,
                names=names,
                delimiter=delimiter,
                numeric=numeric,
                cols=cols,
                quotechar=quotechar,
                empty_as_nan=empty_as_nan,
                int_columns=int_columns,
            )
            problem = problem or f"expected {width} fields ({', '.join(names)}) in every row"
            raise DataError(f"{source}, lines {row_lines[0]}-{row_lines[-1]}: {problem}")
        blocks.append(block)
        lines.append(row_lines)
    if not blocks:
        dtype = np.float64 if numeric else np.str_
        return np.zeros((0, len(cols)), dtype=dtype), np.zeros(0, dtype=np.int64)
    values = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
    return values, np.concatenate(lines)


def decode_text(raw: bytes, *, source: str, encoding: str, first_line: int) -> str:
    """`raw` as text, or a DataError naming the line (counted from `first_line`) of bad bytes.

    A NUL character is refused too: NumPy strings drop trailing NULs, so "7\\0" and "7" would
    become one id.
    """
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as e:
        line = first_line + raw.count(b"\n", 0, e.start)
        raise DataError(
            f"{source}, line {line}: not {encoding} text ({e.reason} at byte {e.start})"
        ) from None
    nul = text.find("\0")
    if nul >= 0:
        line = first_line + text.count("\n", 0, nul)
        raise DataError(
            f"{source}, line {line}: a NUL character, which text files do not hold (is the file "
            "binary, or UTF-16?)"
        )
    return text


def _chunks(data: bytes) -> list[tuple[int, int]]:
    """[start, end) byte ranges of about _CHUNK_BYTES that end after a newline."""
    bounds, start = [], 0
    while start < len(data):
        cut = data.find(b"\n", min(start + _CHUNK_BYTES, len(data)) - 1)
        end = len(data) if cut < 0 else cut + 1
        bounds.append((start, end))
        start = end
    return bounds


def _nonempty_lines(raw: bytes, first_line: int) -> np.ndarray:
    """[R] int64, the file line of each non-empty line of `raw` (the rows the parser sees)."""
    newlines = np.flatnonzero(np.frombuffer(raw, dtype=np.uint8) == ord("\n"))
    starts = np.r_[0, newlines + 1]
    ends = np.r_[newlines, len(raw)]
    return first_line + np.flatnonzero(ends > starts).astype(np.int64)


def _count_delimiters(raw: bytes, text: str, delimiter: str, quotechar: str | None) -> int:
    """Delimiters in a chunk that separate fields, i.e. those outside quoted fields."""
    if quotechar is None:
        return text.count(delimiter)
    buf = np.frombuffer(raw, dtype=np.uint8)
    # Inside a quoted field an odd number of quote characters precede a byte ("" escapes
    # add two); a uint8 running sum keeps that parity without an 8-byte-per-byte array.
    outside = (np.cumsum(buf == ord(quotechar), dtype=np.uint8) & 1) == 0
    return int(np.count_nonzero((buf == ord(delimiter)) & outside))


def _fill_empty(text: str, delimiter: str) -> str:
    """Writes "nan" into every empty field, so the C parser reads it as a missing number."""
    d = delimiter
    # Two passes: replace() does not overlap, so ",,," needs a second pass for its middle.
    for _ in range(2):
        text = text.replace(d + d, f"{d}nan{d}")
    text = text.replace(f"{d}\n", f"{d}nan\n").replace(f"\n{d}", f"\nnan{d}")
    if text.startswith(d):
        text = "nan" + text
    if text.endswith(d):
        text += "nan"
    return text


def _parse_chunk(
    text: str,
    delimiter: str,
    numeric: bool,
    cols: tuple[int, ...],
    quotechar: str | None,
    int_columns: tuple[int, ...] = (),
) -> tuple[np.ndarray | None, str]:
    """(the C parser's table of one chunk, "") or (None, its complaint)."""
    dtype: type | list[tuple[str, type]] = np.float64 if numeric else np.str_
    if int_columns:
        # One record per row, the id fields as int64: the C parser reads their digits exactly.
        dtype = [
            (f"f{k}", np.int64 if j in int_columns else np.float64) for k, j in enumerate(cols)
        ]
    try:
        with warnings.catch_warnings():
            # The parser warns when it skips an empty line; skipping them is what is wanted.
            warnings.filterwarnings("ignore", message="Input line", category=UserWarning)
            block = np.loadtxt(
                io.StringIO(text),
                delimiter=delimiter,
                dtype=dtype,
                comments=None,
                usecols=cols,
                quotechar=quotechar,
                ndmin=1 if int_columns else 2,
            )
    except ValueError as e:
        return None, str(e)
    if not int_columns:
        return block, ""
    fields = [block[name] for name in block.dtype.names]
    for k, j in enumerate(cols):
        # Up to 2**53 a float64 holds every whole number, so the table keeps ids exactly.
        if j in int_columns and np.any((fields[k] > _MAX_EXACT_ID) | (fields[k] < -_MAX_EXACT_ID)):
            return None, ""
    return np.stack(fields, axis=1).astype(np.float64), ""


def _diagnose(
    text: str,
    *,
    source: str,
    first_line: int,
    names: Sequence[str],
    delimiter: str,
    numeric: bool,
    cols: tuple[int, ...],
    quotechar: str | None,
    empty_as_nan: bool,
    int_columns: tuple[int, ...] = (),
) -> None:
    """Scans a chunk the C parser refused and raises a DataError naming the first bad line."""
    width = len(names)
    for k, line in enumerate(text.split("\n")):
        if not line:
            continue
        where = f"{source}, line {first_line + k}"
        if quotechar is not None:
            try:
                fields = next(csv.reader([line], delimiter=delimiter, quotechar=quotechar))
            except csv.Error as e:  # e.g. a lone carriage return outside quotes
                raise DataError(f"{where}: {e}: {line[:80]!r}") from None
        else:
            fields = line.split(delimiter)
        if len(fields) != width:
            hint = "; the delimiter seems wrong" if len(fields) == 1 else ""
            raise DataError(
                f"{where}: expected {width} fields ({', '.join(names)}) separated by "
                f"{delimiter!r}, got {len(fields)}{hint}: {line[:80]!r}"
            )
        if not numeric:
            continue
        for j in cols:
            value = fields[j]
            if j in int_columns:
                _check_integer_id(value, where=where, column=names[j])
                continue
            if empty_as_nan and not value.strip():
                continue
            try:
                float(value)
            except ValueError:
                raise DataError(
                    f"{where}: column {names[j]!r} must be a number, got {value!r}"
                ) from None


def _check_integer_id(value: str, *, where: str, column: str) -> None:
    """A DataError unless `value` is a whole number of at most 2**53 in magnitude."""
    if not _INTEGER_ID.fullmatch(value) or abs(int(value)) > _MAX_EXACT_ID:
        raise DataError(
            f"{where}: column {column!r} must be a whole-number id of at most 2**53 in "
            f"magnitude, got {value[:40]!r}"
        )


def integer_ids(values: np.ndarray, *, source: str, column: str, lines: np.ndarray) -> np.ndarray:
    """Checks that float64 ids are whole numbers and returns them as int64.

    The ids should come from `read_table`'s `int_columns`, which parses them as integers and
    refuses those beyond 2**53 before any rounding; this check is the second guard.

    Args:
      values: [N] float64 parsed ids; lines: [N] the file line of each.

    Returns:
      [N] int64.
    """
    # Beyond 2**53 float64 no longer holds every whole number, so two different ids could
    # become one (and beyond 2**63 the cast to int64 wraps): such ids are refused.
    limit = float(_MAX_EXACT_ID)
    bad = ~np.isfinite(values) | (values != np.round(values)) | (np.abs(values) > limit)
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{source}, line {lines[i]}: column {column!r} must be a whole-number id of at "
            f"most 2**53 in magnitude, got {float(values[i]):g}"
        )
    return values.astype(np.int64)


def canonical_ids(values: np.ndarray, *, source: str, column: str, lines: np.ndarray) -> np.ndarray:
    """Whole-number ids written as text -> their canonical strings ("007" and "7.0" -> "7").

    Side files (movies, categories, users) are matched to the vocabulary that integer ids of
    a numeric table get in `build_dataset`, which writes them this way. The digits are read
    as integers, never through a float, so neighbours beyond 2**53 are refused, not merged.

    Args:
      values: [N] str; lines: [N] the file line of each.

    Returns:
      [N] str.
    """
    out = []
    for value, line in zip(np.asarray(values).tolist(), np.asarray(lines).tolist(), strict=True):
        whole = _WHOLE_ZERO.sub("", value.strip())
        _check_integer_id(whole, where=f"{source}, line {line}", column=column)
        out.append(str(int(whole)))
    return np.asarray(out, dtype=np.str_) if out else np.zeros(0, dtype="<U1")


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
