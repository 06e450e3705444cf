"""Side information of GroupLens releases: titles and years, genres, tags, user features.

Item side information: titles as written (with the year), a numeric "year" parsed from the
title (ml-100k falls back to the release date; NaN where neither gives one), the multi-hot
"genres" ("(no genres listed)" is no genre), and `item_tags`: the genres, then the distinct
user-written tags of the item in file order (`tags.dat`/`tags.csv`). User features: ml-100k's
age, gender, occupation, zip_code; ml-1m's gender, age (GroupLens's age-group code),
occupation (its code 0-20), zip_code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from shortrec_jax.data.build import SideBuilder, vocab_lookup
from shortrec_jax.data.dataset import DataError, Ragged
from shortrec_jax.data.grouplens_files import GroupLensFiles, split_rows, utf8_or_latin1

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


# "Title (1995)", "Title (2006-2007)", "Title (1980– )": the first year, at the end.
_YEAR = re.compile(r"\((\d{4})\s*(?:[-–]\s*\d{0,4}\s*)?\)\s*$")
_RELEASE_DATE_YEAR = re.compile(r"(\d{4})\s*$")


def read_100k_genres(files: GroupLensFiles) -> list[str]:
    """Genre names of ml-100k's flag columns, ordered by the index u.genre gives them."""
    rows = split_rows(files, "u.genre", "|", ("genre", "index"))
    source = files.source("u.genre")
    by_index = {int(int_id(r[1], source, k, "index")): r[0] for k, r in rows}
    if sorted(by_index) != list(range(len(by_index))):
        raise DataError(f"{source}: genre indices must be 0..{len(by_index) - 1}")
    return [by_index[i] for i in range(len(by_index))]


def read_100k_items(
    files: GroupLensFiles, genre_names: Sequence[str]
) -> tuple[list[str], list[str], list[float], list[list[str]]]:
    """(movie ids, titles, years, genres) from u.item."""
    fields = ("movie id", "title", "release date", "video release date", "IMDb URL")
    flags = tuple(f"genre flag {g!r}" for g in genre_names)
    rows = split_rows(files, "u.item", "|", fields + flags)
    source = files.source("u.item")
    ids, titles, years, genres = [], [], [], []
    for k, r in rows:
        ids.append(int_id(r[0], source, k, "movie id"))
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


def read_dat_tags(files: GroupLensFiles) -> dict[str, list[str]]:
    """ml-10m's tags.dat (UserID::MovieID::Tag::Timestamp) -> movie id -> distinct tags."""
    source = files.source("tags.dat")
    movies, tags = [], []
    for k, line in enumerate(utf8_or_latin1(files.read("tags.dat")).splitlines(), start=1):
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
        movies.append(int_id(head[1], source, k, "MovieID"))
        tags.append(tag)
    return group_tags(movies, tags)


# -- values ------------------------------------------------------------------------------------


def int_id(value: str, source: str, line: int, column: str) -> str:
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


def genre_list(genres: str) -> list[str]:
    return [g for g in genres.strip().split("|") if g and g != NO_GENRE]


def group_tags(movies: Sequence[str], tags: Sequence[str]) -> dict[str, list[str]]:
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


def item_side(
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


def user_side(
    rows: Sequence[tuple[int, list[str]]], columns: Mapping[str, int], source: str
) -> SideBuilder:
    """User features from (line, fields) rows whose field 0 is the user id.

    Args:
      columns: feature name -> field position.
    """
    raw_ids = np.array([int_id(r[0], source, k, "user id") for k, r in rows], dtype=np.str_)
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
