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

The files of a release are found and read by `grouplens_files.py`, its side information
parsed by `grouplens_side.py`; `grouplens_release.py` loads an official release by name from
the cache or the web.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from shortrec_jax.data.build import SideBuilder, build_dataset
from shortrec_jax.data.dataset import DataError, Dataset
from shortrec_jax.data.grouplens_files import LAYOUTS, GroupLensFiles, csv_rows, split_rows
from shortrec_jax.data.grouplens_side import (
    ML100K_GENRES,
    genre_list,
    group_tags,
    int_id,
    item_side,
    read_100k_genres,
    read_100k_items,
    read_dat_tags,
    title_year,
    user_side,
)
from shortrec_jax.data.ids import integer_ids
from shortrec_jax.data.text_table import read_named_columns, read_table, require_rows


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
    files = GroupLensFiles(path)
    try:
        layout = next((LAYOUTS[f] for f in LAYOUTS if files.has(f)), None)
        if layout is None:
            raise DataError(
                f"{path}: no MovieLens ratings file; expected one of {list(LAYOUTS)} "
                f"(found {sorted(files.members)})"
            )
        name = name or (path.stem if path.is_file() else path.name)
        ratings = _READERS[layout](files)
        return build_dataset(
            name,
            integer_ids(
                ratings.users, source=ratings.source, column="user id", lines=ratings.lines
            ),
            integer_ids(
                ratings.items, source=ratings.source, column="item id", lines=ratings.lines
            ),
            ratings.ratings,
            ratings.timestamps,
            source=ratings.source,
            duplicates=duplicates,
            rating_range=rating_range or ratings.rating_range,
            extra_item_ids=ratings.movie_ids,
            line_numbers=ratings.lines,
            side=ratings.side,
        )
    finally:
        files.close()


# -- the three layouts -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Ratings:
    """What a layout's reader finds: the ratings, their defaults and the side information.

    Attributes:
      source: the ratings file, for messages.
      users, items, ratings, timestamps: [N] float64 columns of the ratings file.
      lines: [N] int64 the file line of each rating.
      rating_range: the release's rating bounds, unless the caller gives them.
      movie_ids: every movie of the movies file (rated or not), or empty.
      side: the side-information builders.
    """

    source: str
    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray
    lines: np.ndarray
    rating_range: tuple[float, float]
    movie_ids: Sequence[str]
    side: Sequence[SideBuilder]


def _read_ratings(
    files: GroupLensFiles, file: str, names: tuple[str, ...], delimiter: str
) -> tuple[str, np.ndarray, np.ndarray]:
    """(source, [N, 4] float64 table, [N] lines) of a header-less ratings file (u.data, .dat)."""
    source = files.source(file)
    data = files.read(file)
    require_rows(data, source=source, expected=", ".join(names))
    table, lines = read_table(
        data, source=source, names=names, delimiter=delimiter, numeric=True, int_columns=(0, 1)
    )
    return source, table, lines


def _movies_side(
    rows: list[tuple[int, list[str]]] | None, source: str, id_column: str, tags: dict
) -> tuple[list[str], list[SideBuilder]]:
    """(movie ids, item side) of movies.dat / movies.csv rows (id, title, genres; None when
    the release has no movies file) and the item tags."""
    if rows is None:
        return [], [item_side([], [], [], [], tags)] if tags else []
    movie_ids = [int_id(r[0], source, k, id_column) for k, r in rows]
    titles = [r[1].strip() for _, r in rows]
    genres = [genre_list(r[2]) for _, r in rows]
    return movie_ids, [item_side(movie_ids, titles, [title_year(t) for t in titles], genres, tags)]


def _read_100k(files: GroupLensFiles) -> _Ratings:
    source, table, lines = _read_ratings(
        files, "u.data", ("user id", "item id", "rating", "timestamp"), "\t"
    )
    side: list[SideBuilder] = []
    movie_ids: list[str] = []
    if files.has("u.item"):
        genre_names = read_100k_genres(files) if files.has("u.genre") else list(ML100K_GENRES)
        movie_ids, titles, years, genres = read_100k_items(files, genre_names)
        side.append(item_side(movie_ids, titles, years, genres, {}))
    if files.has("u.user"):
        rows = split_rows(files, "u.user", "|", ("user id", "age", "gender", "occupation", "zip"))
        columns = {"age": 1, "gender": 2, "occupation": 3, "zip_code": 4}
        side.append(user_side(rows, columns, files.source("u.user")))
    return _Ratings(source, *table.T, lines, (1.0, 5.0), movie_ids, side)


def _read_dat(files: GroupLensFiles) -> _Ratings:
    source, table, lines = _read_ratings(
        files, "ratings.dat", ("UserID", "MovieID", "Rating", "Timestamp"), "::"
    )
    tags = read_dat_tags(files) if files.has("tags.dat") else {}
    movies = None
    if files.has("movies.dat"):
        movies = split_rows(files, "movies.dat", "::", ("MovieID", "Title", "Genres"))
    movie_ids, side = _movies_side(movies, files.source("movies.dat"), "MovieID", tags)
    if files.has("users.dat"):
        fields = ("UserID", "Gender", "Age", "Occupation", "Zip-code")
        rows = split_rows(files, "users.dat", "::", fields)
        columns = {"gender": 1, "age": 2, "occupation": 3, "zip_code": 4}
        side.append(user_side(rows, columns, files.source("users.dat")))
    # ml-1m (the release with users.dat) has whole stars; ml-10m half stars.
    default_range = (1.0, 5.0) if files.has("users.dat") else (0.5, 5.0)
    return _Ratings(source, *table.T, lines, default_range, movie_ids, side)


def _read_csv(files: GroupLensFiles) -> _Ratings:
    source = files.source("ratings.csv")
    columns = ("userId", "movieId", "rating", "timestamp")
    col, lines = read_named_columns(
        files.read("ratings.csv"),
        source=source,
        required=columns,
        numeric=True,
        int_columns=columns[:2],
        require_data=True,
    )
    tags: dict[str, list[str]] = {}
    if files.has("tags.csv"):
        tag_rows = csv_rows(files, "tags.csv", ("movieId", "tag"))
        tag_source = files.source("tags.csv")
        tags = group_tags(
            [int_id(r[0], tag_source, k, "movieId") for k, r in tag_rows],
            [r[1] for _, r in tag_rows],
        )
    movies = None
    if files.has("movies.csv"):
        movies = csv_rows(files, "movies.csv", ("movieId", "title", "genres"))
    movie_ids, side = _movies_side(movies, files.source("movies.csv"), "movieId", tags)
    return _Ratings(source, *(col[c] for c in columns), lines, (0.5, 5.0), movie_ids, side)


# Each layout's reader, by the layout name `LAYOUTS` gives.
_READERS = {"ml-100k": _read_100k, "::": _read_dat, "csv": _read_csv}
