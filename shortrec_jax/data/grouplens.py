"""MovieLens as GroupLens publishes it: folders or zips of 100K, 1M, 10M, 20M, 25M and latest.

Three file layouts, told apart by the ratings file they hold:

  layout     releases                      ratings       items         users      tags
  u.data     ml-100k                       u.data (tab)  u.item (|)    u.user     -
  ::         ml-1m, ml-10m                 ratings.dat   movies.dat    users.dat  tags.dat
  CSV        ml-20m and later              ratings.csv   movies.csv    -          tags.csv

(ml-1m has users.dat, ml-10m tags.dat; u.item's 19 genre flag columns are named by u.genre.)

The files may sit in the given folder, in one folder below it, or in a zip (read in place,
usually with a top folder such as `ml-1m/` or `ml-10M100K/`). `links.csv` and the tag-genome
files are not read. Ratings are whole stars 1..5 in ml-100k and ml-1m, half stars 0.5..5 from
ml-10m on; a rating outside that range is an error naming the line.

Item side information: titles as written (with the year), a numeric "year" parsed from the
title (ml-100k falls back to the release date; NaN where neither gives one), the multi-hot
"genres" ("(no genres listed)" is no genre), and `item_tags`: the genres, then the distinct
user-written tags of the item in file order (`tags.dat`/`tags.csv`). User features: ml-100k's
age, gender, occupation, zip_code; ml-1m's gender, age (GroupLens's age-group code),
occupation (its code 0-20), zip_code. Items listed in the movies file but never rated get
indices after the rated ones, as in every loader.

`load_grouplens_release` finds a release in the cache or downloads it from GroupLens, checking
the MD5 sum GroupLens publishes beside each zip.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import http.client
import io
import os
import re
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import numpy as np
import tqdm

from shortrec_jax.data.build import SideBuilder, build_dataset, vocab_lookup
from shortrec_jax.data.dataset import DataError, Dataset, Ragged
from shortrec_jax.data.delimited import (
    decode_text,
    integer_ids,
    parse_header,
    read_table,
    split_first_line,
)
from shortrec_jax.data.sources import GROUPLENS_RELEASES

DEFAULT_BASE_URL = "https://files.grouplens.org/datasets/movielens"
CACHE_ENV = "SHORTREC_JAX_CACHE"
# The folder a release's zip unpacks to, where it is not the release name.
RELEASE_FOLDERS = {"ml-10m": "ml-10M100K"}
# ml-100k's genre flag columns, in order; used where the folder has no u.genre.
ML100K_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
NO_GENRE = "(no genres listed)"
# The ratings file of each layout, in the order they are looked for.
_LAYOUTS = {"u.data": "ml-100k", "ratings.dat": "::", "ratings.csv": "csv"}
# "Title (1995)", "Title (2006-2007)", "Title (1980– )": the first year, at the end.
_YEAR = re.compile(r"\((\d{4})\s*(?:[-–]\s*\d{0,4}\s*)?\)\s*$")
_RELEASE_DATE_YEAR = re.compile(r"(\d{4})\s*$")
_MD5 = re.compile(r"\b([0-9a-fA-F]{32})\b")
_DOWNLOAD_BLOCK = 1 << 20
# Download sizes, for the message that says how to get a release.
_SIZES = {
    "ml-1m": "6 MB",
    "ml-10m": "63 MB",
    "ml-20m": "190 MB",
    "ml-25m": "250 MB",
    "ml-latest": "340 MB",
    "ml-latest-small": "1 MB",
}


class _Files:
    """The files of one release, in a folder or a zip that is read in place.

    The files are those directly in the folder (or at the zip's root), else those of the first
    folder one level down that holds a ratings file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        if path.is_dir():
            self.members = self._folder_members(path)
        elif path.is_file():
            try:
                self._zip = zipfile.ZipFile(path)
            except zipfile.BadZipFile:
                raise DataError(
                    f"{path}: not a zip file (expected a GroupLens .zip or a folder)"
                ) from None
            self.members = self._zip_members(self._zip)
        else:
            raise DataError(f"{path}: no such folder or zip file")

    @staticmethod
    def _folder_members(path: Path) -> dict[str, str]:
        for folder in [path, *sorted(p for p in path.iterdir() if p.is_dir())]:
            files = {p.name: str(p) for p in folder.iterdir() if p.is_file()}
            if any(name in files for name in _LAYOUTS):
                return files
        return {p.name: str(p) for p in path.iterdir() if p.is_file()}

    @staticmethod
    def _zip_members(zf: zipfile.ZipFile) -> dict[str, str]:
        by_folder: dict[str, dict[str, str]] = {}
        for member in zf.namelist():
            parts = PurePosixPath(member).parts
            if member.endswith("/") or len(parts) > 2 or parts[0] == "__MACOSX":
                continue
            by_folder.setdefault("/".join(parts[:-1]), {})[parts[-1]] = member
        for folder in sorted(by_folder):
            if any(name in by_folder[folder] for name in _LAYOUTS):
                return by_folder[folder]
        return by_folder.get("", {})

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()

    def has(self, name: str) -> bool:
        return name in self.members

    def source(self, name: str) -> str:
        """How messages name a file: its path, or the zip's path followed by the member."""
        member = self.members.get(name, name)
        return member if self._zip is None else f"{self.path}/{member}"

    def read(self, name: str) -> bytes:
        if name not in self.members:
            raise DataError(f"{self.path}: no {name} file (found {sorted(self.members)})")
        try:
            if self._zip is not None:
                return self._zip.read(self.members[name])
            return Path(self.members[name]).read_bytes()
        except (OSError, zipfile.BadZipFile) as e:
            raise DataError(f"{self.source(name)}: cannot read ({e})") from None


def load_grouplens(
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    duplicates: str = "last",
    rating_range: tuple[float, float] | None = None,
) -> Dataset:
    """Loads a GroupLens MovieLens folder or zip in any of the three layouts.

    Args:
      path: the release's folder, a folder above it, or its official zip.
      name: the data set's name; by default the folder's or zip's name ("ml-1m").
      duplicates: the policy for repeated (user, item) pairs (see build.DUPLICATE_POLICIES);
        the official releases have none.
      rating_range: inclusive rating bounds; by default 1..5 for ml-100k and ml-1m (whole
        stars), else 0.5..5.

    Returns:
      The data set: N ratings with their unix-second timestamps, plus the side information
      described in the module docstring.

    Raises:
      DataError: a missing ratings file, a malformed row, a bad rating, a wrong delimiter or a
        missing column, naming the file and line.
    """
    path = Path(path)
    files = _Files(path)
    try:
        layout = next((_LAYOUTS[f] for f in _LAYOUTS if files.has(f)), None)
        if layout is None:
            raise DataError(
                f"{path}: no MovieLens ratings file; expected one of {list(_LAYOUTS)} "
                f"(found {sorted(files.members)})"
            )
        name = name or (path.stem if path.is_file() else path.name)
        options = {"duplicates": duplicates, "rating_range": rating_range}
        if layout == "ml-100k":
            return _load_100k(files, name, **options)
        if layout == "::":
            return _load_dat(files, name, **options)
        return _load_csv(files, name, **options)
    finally:
        files.close()


# -- the three layouts -------------------------------------------------------------------------


def _load_100k(
    files: _Files, name: str, *, duplicates: str, rating_range: tuple[float, float] | None
) -> Dataset:
    source = files.source("u.data")
    table, lines = read_table(
        files.read("u.data"),
        source=source,
        names=("user id", "item id", "rating", "timestamp"),
        delimiter="\t",
        numeric=True,
    )
    side: list[SideBuilder] = []
    movie_ids: list[str] = []
    if files.has("u.item"):
        genre_names = _read_100k_genres(files) if files.has("u.genre") else list(ML100K_GENRES)
        movie_ids, titles, years, genres = _read_100k_items(files, genre_names)
        side.append(_item_side(movie_ids, titles, years, genres, {}))
    if files.has("u.user"):
        rows = _split_rows(files, "u.user", "|", ("user id", "age", "gender", "occupation", "zip"))
        columns = {"age": 1, "gender": 2, "occupation": 3, "zip_code": 4}
        side.append(_user_side(rows, columns, files.source("u.user")))
    return _build(
        name,
        table,
        lines,
        source=source,
        duplicates=duplicates,
        rating_range=rating_range or (1.0, 5.0),
        movie_ids=movie_ids,
        side=side,
    )


def _load_dat(
    files: _Files, name: str, *, duplicates: str, rating_range: tuple[float, float] | None
) -> Dataset:
    source = files.source("ratings.dat")
    table, lines = read_table(
        files.read("ratings.dat"),
        source=source,
        names=("UserID", "MovieID", "Rating", "Timestamp"),
        delimiter="::",
        numeric=True,
    )
    side: list[SideBuilder] = []
    movie_ids: list[str] = []
    tags = _read_dat_tags(files) if files.has("tags.dat") else {}
    if files.has("movies.dat"):
        rows = _split_rows(files, "movies.dat", "::", ("MovieID", "Title", "Genres"))
        movie_source = files.source("movies.dat")
        movie_ids = [_int_id(r[0], movie_source, k, "MovieID") for k, r in rows]
        titles = [r[1].strip() for _, r in rows]
        genres = [_genre_list(r[2]) for _, r in rows]
        side.append(_item_side(movie_ids, titles, [title_year(t) for t in titles], genres, tags))
    elif tags:
        side.append(_item_side([], [], [], [], tags))
    if files.has("users.dat"):
        fields = ("UserID", "Gender", "Age", "Occupation", "Zip-code")
        rows = _split_rows(files, "users.dat", "::", fields)
        columns = {"gender": 1, "age": 2, "occupation": 3, "zip_code": 4}
        side.append(_user_side(rows, columns, files.source("users.dat")))
    # ml-1m (the release with users.dat) has whole stars; ml-10m half stars.
    default_range = (1.0, 5.0) if files.has("users.dat") else (0.5, 5.0)
    return _build(
        name,
        table,
        lines,
        source=source,
        duplicates=duplicates,
        rating_range=rating_range or default_range,
        movie_ids=movie_ids,
        side=side,
    )


def _load_csv(
    files: _Files, name: str, *, duplicates: str, rating_range: tuple[float, float] | None
) -> Dataset:
    source = files.source("ratings.csv")
    head, body = split_first_line(files.read("ratings.csv"))
    columns = ("userId", "movieId", "rating", "timestamp")
    header = parse_header(head, source=source, delimiter=",", required=columns)
    table, lines = read_table(
        body,
        source=source,
        names=header,
        delimiter=",",
        numeric=True,
        first_line=2,
        usecols=[header.index(c) for c in columns],
    )
    side: list[SideBuilder] = []
    movie_ids: list[str] = []
    tags: dict[str, list[str]] = {}
    if files.has("tags.csv"):
        tag_rows = _csv_rows(files, "tags.csv", ("movieId", "tag"))
        tag_source = files.source("tags.csv")
        tags = _group_tags(
            [_int_id(r[0], tag_source, k, "movieId") for k, r in tag_rows],
            [r[1] for _, r in tag_rows],
        )
    if files.has("movies.csv"):
        rows = _csv_rows(files, "movies.csv", ("movieId", "title", "genres"))
        movie_source = files.source("movies.csv")
        movie_ids = [_int_id(r[0], movie_source, k, "movieId") for k, r in rows]
        titles = [r[1].strip() for _, r in rows]
        genres = [_genre_list(r[2]) for _, r in rows]
        side.append(_item_side(movie_ids, titles, [title_year(t) for t in titles], genres, tags))
    elif tags:
        side.append(_item_side([], [], [], [], tags))
    return _build(
        name,
        table,
        lines,
        source=source,
        duplicates=duplicates,
        rating_range=rating_range or (0.5, 5.0),
        movie_ids=movie_ids,
        side=side,
    )


def _build(
    name: str,
    table: np.ndarray,
    lines: np.ndarray,
    *,
    source: str,
    duplicates: str,
    rating_range: tuple[float, float],
    movie_ids: Sequence[str],
    side: Sequence[SideBuilder],
) -> Dataset:
    """Builds the data set from a [N, 4] float64 table of user, item, rating, timestamp."""
    return build_dataset(
        name,
        integer_ids(table[:, 0], source=source, column="user id", lines=lines),
        integer_ids(table[:, 1], source=source, column="item id", lines=lines),
        table[:, 2],
        table[:, 3],
        source=source,
        duplicates=duplicates,
        rating_range=rating_range,
        extra_item_ids=movie_ids,
        line_numbers=lines,
        side=side,
    )


# -- file readers ------------------------------------------------------------------------------


def _csv_rows(files: _Files, file: str, columns: Sequence[str]) -> list[tuple[int, list[str]]]:
    """(line, values of `columns`) of each row of a UTF-8 CSV file with a header row.

    For the text files (titles, tags) the csv module is used rather than `read_table`: a
    NumPy string table is as wide as its longest field in every row and column.
    """
    source = files.source(file)
    head, body = split_first_line(files.read(file))
    header = parse_header(head, source=source, delimiter=",", required=columns)
    positions = [header.index(c) for c in columns]
    text = decode_text(body, source=source, encoding="utf-8", first_line=2)
    reader = csv.reader(io.StringIO(text, newline=""))
    rows = []
    try:
        for fields in reader:
            if not fields:
                continue
            line = reader.line_num + 1
            if len(fields) != len(header):
                raise DataError(
                    f"{source}, line {line}: expected {len(header)} fields "
                    f"({', '.join(header)}), got {len(fields)}"
                )
            rows.append((line, [fields[j] for j in positions]))
    except csv.Error as e:
        raise DataError(f"{source}, line {reader.line_num + 1}: {e}") from None
    return rows


def _text(data: bytes) -> str:
    """ml-100k and ml-1m write Latin-1, later releases UTF-8: UTF-8 is tried first."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _split_rows(
    files: _Files, file: str, sep: str, fields: Sequence[str]
) -> list[tuple[int, list[str]]]:
    """(line number, fields) of each non-empty row of a small `sep`-separated file."""
    source = files.source(file)
    rows = []
    for k, line in enumerate(_text(files.read(file)).splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(sep)
        if len(parts) != len(fields):
            hint = "; the delimiter seems wrong" if len(parts) == 1 else ""
            raise DataError(
                f"{source}, line {k}: expected {len(fields)} fields ({', '.join(fields)}) "
                f"separated by {sep!r}, got {len(parts)}{hint}: {line[:80]!r}"
            )
        rows.append((k, parts))
    return rows


def _read_100k_genres(files: _Files) -> list[str]:
    """Genre names of ml-100k's flag columns, ordered by the index u.genre gives them."""
    rows = _split_rows(files, "u.genre", "|", ("genre", "index"))
    source = files.source("u.genre")
    by_index = {int(_int_id(r[1], source, k, "index")): r[0] for k, r in rows}
    if sorted(by_index) != list(range(len(by_index))):
        raise DataError(f"{source}: genre indices must be 0..{len(by_index) - 1}")
    return [by_index[i] for i in range(len(by_index))]


def _read_100k_items(
    files: _Files, genre_names: Sequence[str]
) -> tuple[list[str], list[str], list[float], list[list[str]]]:
    """(movie ids, titles, years, genres) from u.item."""
    fields = ("movie id", "title", "release date", "video release date", "IMDb URL")
    flags = tuple(f"genre flag {g!r}" for g in genre_names)
    rows = _split_rows(files, "u.item", "|", fields + flags)
    source = files.source("u.item")
    ids, titles, years, genres = [], [], [], []
    for k, r in rows:
        ids.append(_int_id(r[0], source, k, "movie id"))
        title = r[1].strip()
        titles.append(title)
        year = title_year(title)
        if np.isnan(year):
            match = _RELEASE_DATE_YEAR.search(r[2])
            year = float(match.group(1)) if match else np.nan
        years.append(year)
        row_flags = r[len(fields) :]
        bad = [j for j, f in enumerate(row_flags) if f not in ("0", "1")]
        if bad:
            raise DataError(
                f"{source}, line {k}: {flags[bad[0]]} must be 0 or 1, got {row_flags[bad[0]]!r}"
            )
        genres.append([g for g, f in zip(genre_names, row_flags, strict=True) if f == "1"])
    return ids, titles, years, genres


def _read_dat_tags(files: _Files) -> dict[str, list[str]]:
    """ml-10m's tags.dat (UserID::MovieID::Tag::Timestamp) -> movie id -> distinct tags."""
    source = files.source("tags.dat")
    movies, tags = [], []
    for k, line in enumerate(_text(files.read("tags.dat")).splitlines(), start=1):
        if not line.strip():
            continue
        # A tag is free text and may itself hold "::": the first two fields and the last are
        # fixed, the tag is what lies between.
        head = line.split("::", 2)
        tag, sep, _ = head[-1].rpartition("::") if len(head) == 3 else ("", "", "")
        if not sep:
            raise DataError(
                f"{source}, line {k}: expected UserID::MovieID::Tag::Timestamp, got {line[:80]!r}"
            )
        movies.append(_int_id(head[1], source, k, "MovieID"))
        tags.append(tag)
    return _group_tags(movies, tags)


# -- values ------------------------------------------------------------------------------------


def _int_id(value: str, source: str, line: int, column: str) -> str:
    """A whole-number id as its canonical string ("007" -> "7", like the ratings' ids)."""
    try:
        return str(int(value))
    except ValueError:
        raise DataError(
            f"{source}, line {line}: column {column!r} must be a whole-number id, got {value!r}"
        ) from None


def title_year(title: str) -> float:
    """The year at the end of a MovieLens title ("Heat (1995)" -> 1995.0), else NaN."""
    match = _YEAR.search(title)
    return float(match.group(1)) if match else np.nan


def _genre_list(genres: str) -> list[str]:
    return [g for g in genres.strip().split("|") if g and g != NO_GENRE]


def _group_tags(movies: Sequence[str], tags: Sequence[str]) -> dict[str, list[str]]:
    """Movie id -> its distinct tags (whitespace-trimmed, none empty), in file order.

    Plain lists, not NumPy string arrays: those are as wide as the longest tag in every row.
    """
    out: dict[str, dict[str, None]] = {}
    for movie, tag in zip(movies, tags, strict=True):
        tag = tag.strip()
        if tag:
            out.setdefault(movie, {})[tag] = None
    return {m: list(t) for m, t in out.items()}


# -- side information --------------------------------------------------------------------------


def _item_side(
    movie_ids: Sequence[str],
    titles: Sequence[str],
    years: Sequence[float],
    genres: Sequence[Sequence[str]],
    tags: Mapping[str, Sequence[str]],
) -> SideBuilder:
    """Aligns per-movie rows (and per-movie tags) to the item vocabulary."""

    def build(user_vocab: np.ndarray, item_vocab: np.ndarray) -> dict[str, Any]:
        pos = vocab_lookup(
            item_vocab, np.asarray(movie_ids, dtype=np.str_), np.arange(len(movie_ids)), -1
        ).tolist()
        item_genres = [list(genres[p]) if p >= 0 else [] for p in pos]
        item_tags = [
            list(dict.fromkeys([*g, *tags.get(i, ())]))
            for g, i in zip(item_genres, item_vocab.tolist(), strict=True)
        ]
        out: dict[str, Any] = {"item_tags": Ragged.from_lists(item_tags)}
        if movie_ids:
            out["item_titles"] = np.array([titles[p] if p >= 0 else "" for p in pos], np.str_)
            out["item_numeric"] = {
                "year": np.array([years[p] if p >= 0 else np.nan for p in pos], np.float32)
            }
            out["item_multi_hot"] = {"genres": Ragged.from_lists(item_genres)}
        return out

    return build


def _user_side(
    rows: Sequence[tuple[int, list[str]]], columns: Mapping[str, int], source: str
) -> SideBuilder:
    """User features from (line, fields) rows whose field 0 is the user id.

    Args:
      columns: feature name -> field position.
    """
    raw_ids = np.array([_int_id(r[0], source, k, "user id") for k, r in rows], dtype=np.str_)
    features = {
        feature: np.array([r[j].strip() for _, r in rows], dtype=np.str_)
        for feature, j in columns.items()
    }

    def build(user_vocab: np.ndarray, item_vocab: np.ndarray) -> dict[str, Any]:
        return {
            "user_features": {
                k: vocab_lookup(user_vocab, raw_ids, v, "") for k, v in features.items()
            }
        }

    return build


# -- releases: cache and download --------------------------------------------------------------


def default_cache_dir() -> Path:
    """`$SHORTREC_JAX_CACHE`, else `~/.cache/shortrec_jax`."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "shortrec_jax").expanduser()


def load_grouplens_release(
    release: str,
    *,
    path: str | os.PathLike[str] | None = None,
    download: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    base_url: str = DEFAULT_BASE_URL,
    md5: str | None = None,
    sha256: str | None = None,
    **options: Any,
) -> Dataset:
    """Loads an official GroupLens release by name, from `path`, the cache, or the web.

    Looks, in order, at `path`; at `<cache_dir>/<release>.zip` or the folder it unpacks to
    (`<cache_dir>/ml-1m/`, `<cache_dir>/ml-10M100K/`); then, with `download=True`, fetches
    `<base_url>/<release>.zip` into the cache. A download goes to a temporary file that is
    renamed only once its checksum matches: `md5` or `sha256` when given, else the MD5 sum
    GroupLens publishes at `<base_url>/<release>.zip.md5`. On a mismatch nothing is kept. A
    copy already in the cache is used as it is, without a new checksum.

    Args:
      release: one of GROUPLENS_RELEASES ("ml-1m", ..., "ml-latest-small").
      path: the release's folder or zip, already on disk.
      download: fetch the release when it is not cached (needs network access).
      cache_dir: where releases are kept; default `default_cache_dir()`.
      base_url: where the zips are published.
      md5, sha256: the expected checksum of the zip (hex), instead of the published MD5.
      **options: passed to `load_grouplens` (duplicates, rating_range).

    Returns:
      The data set, named after the release.
    """
    if release not in GROUPLENS_RELEASES:
        raise DataError(
            f"unknown GroupLens release {release!r}; expected one of {GROUPLENS_RELEASES}"
        )
    if path is not None:
        return load_grouplens(path, name=release, **options)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    zip_path = cache / f"{release}.zip"
    for candidate in (zip_path, cache / RELEASE_FOLDERS.get(release, release)):
        if candidate.exists():
            return load_grouplens(candidate, name=release, **options)
    if not download:
        raise DataError(
            f"{release} is not in the cache {cache}: pass download=True to fetch it from "
            f"{base_url} (about {_SIZES[release]}), or path= to a copy of {release}.zip or "
            "its folder"
        )
    fetch(f"{base_url.rstrip('/')}/{release}.zip", zip_path, md5=md5, sha256=sha256)
    return load_grouplens(zip_path, name=release, **options)


def fetch(
    url: str,
    dest: str | os.PathLike[str],
    *,
    md5: str | None = None,
    sha256: str | None = None,
    timeout: float = 60.0,
) -> Path:
    """Downloads `url` to `dest` through a temporary file, verifying its checksum.

    Args:
      url: what to fetch.
      dest: the final path; its folder is created.
      md5, sha256: expected hex digests; with neither, the MD5 sum is read from `url + ".md5"`.
      timeout: seconds to wait for the server on each read.

    Returns:
      `dest`, complete and verified.

    Raises:
      DataError: the server cannot be reached or answers with an error, or the checksum
        differs (the partial download is deleted either way).
    """
    dest = Path(dest)
    if md5 is None and sha256 is None:
        md5 = _published_md5(url + ".md5", timeout)
    expected = {"md5": md5, "sha256": sha256}
    digests = {k: hashlib.new(k, usedforsecurity=False) for k, v in expected.items() if v}
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, _open_url(url, timeout) as response:
            _copy(response, out, digests.values(), desc=f"downloading {dest.name}", url=url)
        for kind, digest in digests.items():
            if digest.hexdigest() != str(expected[kind]).lower():
                raise DataError(
                    f"{url}: {kind} checksum mismatch, expected {expected[kind]}, got "
                    f"{digest.hexdigest()}; the download was deleted"
                )
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return dest


def _copy(
    response: http.client.HTTPResponse,
    out: BinaryIO,
    digests: Iterable[Any],
    *,
    desc: str,
    url: str,
) -> None:
    """Copies an HTTP response to a file, feeding the digests and a progress bar."""
    length = response.headers.get("Content-Length")
    total = int(length) if length else None
    received = 0
    with tqdm.tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc) as bar:
        try:
            while block := response.read(_DOWNLOAD_BLOCK):
                out.write(block)
                for digest in digests:
                    digest.update(block)
                received += len(block)
                bar.update(len(block))
        except (OSError, http.client.HTTPException) as e:
            raise DataError(f"{url}: the download broke off ({e!r})") from None
    # http.client ends a read quietly when the server closes early; the length tells.
    if total is not None and received != total:
        raise DataError(f"{url}: the download broke off after {received} of {total} bytes")


def _open_url(url: str, timeout: float) -> Any:
    try:
        return urllib.request.urlopen(url, timeout=timeout)
    except urllib.error.HTTPError as e:
        raise DataError(f"{url}: the server answered HTTP {e.code} ({e.reason})") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise DataError(f"{url}: cannot download ({reason})") from None


def _published_md5(url: str, timeout: float) -> str:
    try:
        with _open_url(url, timeout) as response:
            text = response.read(4096).decode("ascii", "replace")
    except DataError as e:
        raise DataError(
            f"{e}; cannot verify the download without it (pass md5= or sha256= to give the "
            "checksum yourself)"
        ) from None
    match = _MD5.search(text)
    if match is None:
        raise DataError(f"{url}: expected an MD5 sum (32 hex digits), got {text[:80]!r}")
    return match.group(1).lower()


__all__ = [
    "DEFAULT_BASE_URL",
    "default_cache_dir",
    "fetch",
    "load_grouplens",
    "load_grouplens_release",
    "title_year",
]
