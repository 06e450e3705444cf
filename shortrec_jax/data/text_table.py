"""Delimited text: reading files, header rows, and the fast table reader every text loader uses.

`read_table` turns the bytes of a delimited file into a NumPy table with NumPy's C parser
(`np.loadtxt`), a chunk at a time, so that a 25-million-row ratings file never becomes
25 million Python objects. When the C parser refuses a chunk, that chunk alone is scanned
line by line to name the file, line and column of the first bad row.
"""

from __future__ import annotations

import csv
import io
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from shortrec_jax.data.dataset import DataError
from shortrec_jax.data.ids import MAX_EXACT_ID, check_integer_id

# The C parser takes one delimiter character; a multi-character delimiter ("::" of ml-1m) is
# replaced by this control character, which never occurs in the text files read here.
_SUBSTITUTE = "\x1f"
# Chunk size: large enough that per-chunk overhead is negligible, small enough that the
# decoded text of one chunk (4 bytes per character at worst) stays far below memory limits.
_CHUNK_BYTES = 1 << 24
# A UTF-8 byte-order mark, which some editors write at the start of a file.
_BOM = b"\xef\xbb\xbf"


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


def read_named_columns(
    data: bytes,
    *,
    source: str,
    required: Sequence[str],
    optional: Sequence[str] | None = (),
    numeric: bool,
    int_columns: Sequence[str] = (),
    quotechar: str | None = None,
    empty_as_nan: bool = False,
    require_data: bool = False,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The columns of a comma-separated file with a header row, by name (`read_table` below).

    Args:
      data: the file's bytes, header row included.
      source: the file name, for messages.
      required: columns the header must name.
      optional: columns read when the header names them; None = every column it names.
      numeric, quotechar, empty_as_nan: as in `read_table`.
      int_columns: names of whole-number id columns (as `read_table`'s `int_columns`).
      require_data: refuse a file without rows (`require_rows`).

    Returns:
      (name -> [N] column, in `required` then header or `optional` order; lines [N] int64).
    """
    head, body = split_first_line(data)
    header = parse_header(head, source=source, delimiter=",", required=required)
    if require_data:
        require_rows(body, source=source, expected=", ".join(required))
    extra = header if optional is None else optional
    wanted = [*required, *(c for c in extra if c in header and c not in required)]
    table, lines = read_table(
        body,
        source=source,
        names=header,
        delimiter=",",
        numeric=numeric,
        first_line=2,
        usecols=[header.index(c) for c in wanted],
        quotechar=quotechar,
        empty_as_nan=empty_as_nan,
        int_columns=[header.index(c) for c in int_columns],
    )
    return dict(zip(wanted, table.T, strict=True)), lines


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


def _ascii_numbers(text: str, delimiter: str, quotechar: str | None) -> str:
    """`text` with every non-ASCII character but the delimiter and quote replaced by "?".

    No number holds a non-ASCII character, and NumPy's integer parser (2.4) must not see one:
    some fields crash the process ("\U00066f2a\x1130": a segmentation fault) and others are
    read as a number ("\U00066f2a\U00066f2a30"). A "?" makes the field unparseable instead,
    so the chunk goes to `_diagnose`, which names the line from the original text; fields the
    parser does not read (outside `usecols`) keep their columns.
    """
    keep = re.escape(delimiter + (quotechar or ""))
    return re.sub(f"[^\\x00-\\x7f{keep}]", "?", text)


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
    if numeric and not text.isascii():
        text = _ascii_numbers(text, delimiter, quotechar)
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
        if j in int_columns and np.any((fields[k] > MAX_EXACT_ID) | (fields[k] < -MAX_EXACT_ID)):
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
                check_integer_id(value, where=where, column=names[j])
                continue
            if empty_as_nan and not value.strip():
                continue
            try:
                float(value)
            except ValueError:
                raise DataError(
                    f"{where}: column {names[j]!r} must be a number, got {value!r}"
                ) from None
