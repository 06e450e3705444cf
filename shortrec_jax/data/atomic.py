"""RecBole atomic files (`.inter`, `.user`, `.item`, `.kg`, `.link`) and the bundled MovieLens 100K.

An atomic file is tab-separated with a typed header row, `name:type`, where type is `token`,
`token_seq` (space-separated tokens), `float` or `float_seq`. The bundled ml-100k is exactly
RecBole 1.2.1's files, gzip-compressed, read by the same code as any other atomic folder.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from shortrec_jax.data.build import SideBuilder, build_dataset, parse_float_column, vocab_lookup
from shortrec_jax.data.dataset import DataError, Dataset, Ragged

ATOMIC_TYPES = ("token", "token_seq", "float", "float_seq")
BUNDLED_DIR = Path(__file__).parent / "bundled"

Column = np.ndarray | Ragged


def _read_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 file (optionally gzip-compressed), without their line endings."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        # utf-8-sig drops a byte-order mark, which would otherwise prefix the first header name.
        with opener(path, "rt", encoding="utf-8-sig", newline="") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    # Only \n, \r\n and \r end a line: str.splitlines() would also split at characters a
    # token may hold (\x0b, \x1c-\x1e, \x85, \u2028, \u2029) and shift every line number after.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    nul = text.find("\0")
    if nul >= 0:
        # NumPy strings drop trailing NULs, so "7\\0" and "7" would become one token.
        line = text.count("\n", 0, nul) + 1
        raise DataError(
            f"{path}, line {line}: a NUL character, which text files do not hold (is the file "
            "binary, or UTF-16?)"
        )
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def read_atomic(path: str | os.PathLike[str]) -> dict[str, Column]:
    """Reads one atomic file.

    Args:
      path: a `.inter`/`.user`/... file, optionally `.gz`.

    Returns:
      Column name (without its type) -> column: `token` -> [N] str, `float` -> [N] float64,
      `token_seq` -> Ragged with N rows, `float_seq` -> Ragged of the number strings.
    """
    return read_atomic_lines(path)[0]


def read_atomic_lines(path: str | os.PathLike[str]) -> tuple[dict[str, Column], np.ndarray]:
    """`read_atomic`, plus the file line of each row ([N] int64, 1-based; blank lines skipped)
    for messages about rows found bad later."""
    path = Path(path)
    lines = _read_lines(path)
    if not lines:
        raise DataError(f"{path}: empty file, expected a header row like 'user_id:token'")
    header = lines[0].split("\t")
    names, types = [], []
    for field in header:
        name, sep, typ = field.partition(":")
        if not sep or typ not in ATOMIC_TYPES or not name:
            raise DataError(
                f"{path}, line 1: header field {field!r} must be 'name:type' with type in "
                f"{ATOMIC_TYPES} (is the file tab-separated?)"
            )
        names.append(name)
        types.append(typ)
    if len(set(names)) != len(names):
        raise DataError(f"{path}, line 1: repeated column name in {names}")
    rows = [line.split("\t") for line in lines[1:] if line]
    if not rows:
        # A header row alone is an empty file, as everywhere else.
        raise DataError(f"{path}: empty file (no rows), expected rows with {', '.join(names)}")
    width = len(names)
    line_of_row = _line_numbers(lines)
    for i, row in enumerate(rows):
        if len(row) != width:
            line_no = line_of_row[i]
            raise DataError(
                f"{path}, line {line_no}: expected {width} tab-separated fields "
                f"({', '.join(names)}), got {len(row)}"
            )
    columns: dict[str, Column] = {}
    for j, (name, typ) in enumerate(zip(names, types, strict=True)):
        values = [r[j] for r in rows]
        if typ == "token":
            columns[name] = np.asarray(values, dtype=np.str_) if values else np.zeros(0, "<U1")
        elif typ == "float":
            columns[name] = parse_float_column(
                values, source=str(path), column=name, line_numbers=line_of_row
            )
        else:
            columns[name] = Ragged.from_lists([v.split() for v in values])
    return columns, np.asarray(line_of_row, dtype=np.int64)


def _is_float(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def _line_numbers(lines: list[str]) -> list[int]:
    """File line number (1-based) of each non-empty data row."""
    return [k + 1 for k, line in enumerate(lines) if k > 0 and line]


def _find(folder: Path, name: str, ext: str) -> Path | None:
    for candidate in (folder / f"{name}.{ext}", folder / f"{name}.{ext}.gz"):
        if candidate.exists():
            return candidate
    return None


def _require(columns: dict[str, Column], path: Path, *names: str) -> None:
    missing = [n for n in names if n not in columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; found {list(columns)}")


def load_atomic(
    folder: str | os.PathLike[str],
    name: str | None = None,
    *,
    duplicates: str = "last",
    rating_range: tuple[float, float] | None = None,
) -> Dataset:
    """Loads a folder of RecBole atomic files named `<name>.<ext>` (`.gz` allowed).

    `.inter` is required, with `user_id` and `item_id` columns and optional `rating`
    (default 1.0, implicit feedback) and `timestamp`. Optional files:
      `.user`: every other column becomes a categorical user feature.
      `.item`: a `*title*` column gives titles; `class`/`genre`/`genres` the multi-hot "genres"
        (also used as item tags); other `token_seq` columns become multi-hot features; `float`
        columns and `*year*` token columns become numeric ("release_year" is named "year";
        non-numeric values such as "unknown" are missing); other tokens are categorical.
      `.kg` (head_id, relation_id, tail_id) and `.link` (item_id, entity_id): the knowledge graph.

    Args:
      folder: the folder holding the files.
      name: the file stem; by default the folder's name.
      duplicates: the policy for repeated (user, item) pairs (see build.DUPLICATE_POLICIES).
      rating_range: inclusive bounds checked on every rating.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder of atomic files")
    name = name or folder.name
    inter_path = _find(folder, name, "inter")
    if inter_path is None:
        raise DataError(f"{folder}: no {name}.inter (or {name}.inter.gz) file")
    inter, inter_lines = read_atomic_lines(inter_path)
    _require(inter, inter_path, "user_id", "item_id")
    n = len(inter["user_id"])
    ratings = inter.get("rating", np.ones(n))
    timestamps = inter.get("timestamp")
    if timestamps is not None:
        timestamps = np.asarray(timestamps, dtype=np.float64)
    side: list[SideBuilder] = []
    extra_item_ids: list[str] = []

    user_path = _find(folder, name, "user")
    if user_path is not None:
        user_cols = read_atomic(user_path)
        _require(user_cols, user_path, "user_id")
        raw = user_cols.pop("user_id")
        feats = {k: v for k, v in user_cols.items() if isinstance(v, np.ndarray)}
        side.append(
            lambda uv, iv: {
                "user_features": {k: vocab_lookup(uv, raw, v, "") for k, v in feats.items()}
            }
        )

    item_path = _find(folder, name, "item")
    if item_path is not None:
        item_cols, item_lines = read_atomic_lines(item_path)
        _require(item_cols, item_path, "item_id")
        _check_item_numbers(item_cols, item_lines, item_path)
        raw_items = item_cols.pop("item_id")
        extra_item_ids = raw_items.tolist()
        side.append(_item_side(item_cols, raw_items))

    kg_path, link_path = _find(folder, name, "kg"), _find(folder, name, "link")
    if kg_path is not None:
        kg = read_atomic(kg_path)
        _require(kg, kg_path, "head_id", "relation_id", "tail_id")
        triples = np.stack([kg["head_id"], kg["relation_id"], kg["tail_id"]], axis=1)
        if link_path is None:
            raise DataError(f"{folder}: {kg_path.name} needs a {name}.link file (item -> entity)")
        link = read_atomic(link_path)
        _require(link, link_path, "item_id", "entity_id")
        side.append(
            lambda uv, iv: {
                "kg_triples": triples,
                "item_entities": vocab_lookup(iv, link["item_id"], link["entity_id"], ""),
            }
        )

    return build_dataset(
        name,
        inter["user_id"],
        inter["item_id"],
        ratings,
        timestamps,
        source=str(inter_path),
        line_numbers=inter_lines,
        duplicates=duplicates,
        rating_range=rating_range,
        extra_item_ids=extra_item_ids,
        side=side,
    )


def _check_item_numbers(cols: dict[str, Column], lines: np.ndarray, path: Path) -> None:
    """Refuses an infinite item number, or one beyond float32, naming its line ("nan" is the
    missing value, which the encoders impute)."""
    limit = float(np.finfo(np.float32).max)
    for name, col in cols.items():
        if isinstance(col, np.ndarray) and col.dtype.kind == "f":
            bad = np.abs(col) > limit
            if np.any(bad):
                i = int(np.flatnonzero(bad)[0])
                raise DataError(
                    f"{path}, line {lines[i]}: column {name!r} must be a float32 number "
                    f"(or nan where unknown), got {col[i]:g}"
                )


def _item_side(cols: dict[str, Column], raw_items: np.ndarray) -> SideBuilder:
    """Sorts the `.item` columns into titles, genres, multi-hot, numeric and categorical."""
    titles = None
    multi: dict[str, Ragged] = {}
    numeric: dict[str, np.ndarray] = {}
    categorical: dict[str, np.ndarray] = {}
    for col_name, col in cols.items():
        lower = col_name.lower()
        if "title" in lower:
            titles = (
                np.asarray([" ".join(r) for r in col.to_lists()], dtype=np.str_)
                if isinstance(col, Ragged)
                else col
            )
        elif isinstance(col, Ragged):
            multi["genres" if lower in ("class", "genre", "genres") else col_name] = col
        elif col.dtype.kind == "f":
            numeric[col_name] = col.astype(np.float32)
        elif "year" in lower:
            numeric["year" if lower == "release_year" else col_name] = _numeric_or_nan(col)
        else:
            categorical[col_name] = col

    def aligned(uv: np.ndarray, iv: np.ndarray) -> dict[str, object]:
        pos = vocab_lookup(iv, raw_items, np.arange(len(raw_items)), -1)

        def take(values: np.ndarray, fill: object) -> np.ndarray:
            # Items without a row (or an .item file without rows) get `fill`.
            out = np.full(pos.shape, fill, dtype=np.result_type(values, np.asarray(fill)))
            out[pos >= 0] = values[pos[pos >= 0]]
            return out

        out: dict[str, object] = {
            "item_categorical": {k: take(v, "") for k, v in categorical.items()},
            "item_numeric": {k: take(v, np.nan).astype(np.float32) for k, v in numeric.items()},
            "item_multi_hot": {k: _take_rows(v, pos) for k, v in multi.items()},
        }
        if titles is not None:
            out["item_titles"] = take(titles, "")
        if "genres" in out["item_multi_hot"]:
            out["item_tags"] = out["item_multi_hot"]["genres"]
        return out

    return aligned


def _take_rows(rag: Ragged, pos: np.ndarray) -> Ragged:
    """Rows `pos` of `rag`, with an empty row where `pos < 0`."""
    lengths = np.zeros(pos.shape, dtype=np.int64)
    lengths[pos >= 0] = rag.lengths()[pos[pos >= 0]]
    offsets = np.zeros(pos.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    starts = rag.offsets[np.maximum(pos, 0)]
    idx = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
    return Ragged(values=rag.values[idx], offsets=offsets)


def _numeric_or_nan(col: np.ndarray) -> np.ndarray:
    out = np.full(col.shape, np.nan, dtype=np.float32)
    for i, v in enumerate(col.tolist()):
        if _is_float(v):
            out[i] = float(v)
    return out


def load_ml100k(*, duplicates: str = "last") -> Dataset:
    """The bundled MovieLens 100K: 100,000 ratings 1-5, 943 users, 1,682 items, offline.

    User features age, gender, occupation, zip_code; item titles, year, 19 genres (as the
    multi-hot "genres" and as item tags); the Freebase knowledge graph and item links.
    """
    return load_atomic(
        BUNDLED_DIR / "ml-100k", "ml-100k", duplicates=duplicates, rating_range=(1.0, 5.0)
    )


__all__ = ["load_atomic", "load_ml100k", "read_atomic"]
