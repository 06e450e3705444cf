"""MovieLens through tensorflow-datasets: `load("tfds:movielens/100k-ratings")` (extra `tfds`).

For users who already keep their data in TFDS. The `movielens/*-ratings` builders give one
example per rating with the features user_id, movie_id, user_rating, timestamp, movie_title,
movie_genres (class labels), and for 100k and 1m also user_gender, bucketized_user_age,
raw_user_age (100k), user_occupation_text and user_zip_code. TensorFlow is imported only here,
and only when this source is used; the GroupLens loader reads the same data without it.

Mapping: user and item ids are TFDS's strings; item titles, the numeric "year" parsed from the
title, the multi-hot "genres" (also `item_tags`); user features "gender" ("M"/"F"), "age"
(raw_user_age), "age_bucket" (bucketized_user_age), "occupation", "zip_code", from the first
example of each user and item.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from shortrec_jax.data.build import SideBuilder, build_dataset, vocab_lookup
from shortrec_jax.data.dataset import DataError, Dataset, Ragged
from shortrec_jax.data.grouplens_side import NO_GENRE, title_year

TFDS_EXTRA = 'pip install "shortrec-jax[tfds]"'
_REQUIRED = ("user_id", "movie_id", "user_rating")
# TFDS feature -> user feature name.
_USER_FEATURES = {
    "user_gender": "gender",
    "raw_user_age": "age",
    "bucketized_user_age": "age_bucket",
    "user_occupation_text": "occupation",
    "user_zip_code": "zip_code",
}
_OPTIONAL = ("timestamp", "movie_title", *_USER_FEATURES)


def _import_tfds() -> tuple[Any, Any]:
    """(tensorflow, tensorflow_datasets), or a DataError that says how to install them."""
    try:
        import tensorflow as tf
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise DataError(
            f"the tfds source needs tensorflow-datasets and TensorFlow ({e.name or e} is not "
            f"installed); install them with: {TFDS_EXTRA}"
        ) from None
    return tf, tfds


def load_tfds(
    name: str,
    *,
    split: str = "train",
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = False,
    duplicates: str = "last",
    batch_size: int = 65_536,
) -> Dataset:
    """Loads a TFDS ratings builder such as "movielens/1m-ratings".

    Args:
      name: the TFDS builder name (with its config), e.g. "movielens/100k-ratings".
      split: the TFDS split (the MovieLens builders have only "train").
      data_dir: TFDS's data folder (default: TFDS's own, `~/tensorflow_datasets`).
      download: download and prepare the data set when it is not prepared yet.
      duplicates: the policy for repeated (user, item) pairs (see build.DUPLICATE_POLICIES).
      batch_size: examples moved from TensorFlow to NumPy at a time.

    Returns:
      The data set, named `name`: ratings [N] float32, timestamps [N] int64 unix seconds (0
      where the builder has none), with the side information of the module docstring.
    """
    tf, tfds = _import_tfds()
    try:
        builder = tfds.builder(name, data_dir=None if data_dir is None else os.fspath(data_dir))
    except ValueError as e:
        raise DataError(f"tfds:{name}: {e}") from None
    features = builder.info.features
    missing = [f for f in _REQUIRED if f not in features]
    if missing:
        raise DataError(
            f"tfds:{name}: no feature(s) {missing}; a ratings builder has {list(_REQUIRED)} "
            f"(found {list(features)})"
        )
    if download:
        builder.download_and_prepare()
    try:
        ds = builder.as_dataset(split=split)
    except AssertionError:
        raise DataError(
            f"tfds:{name}: not prepared in {builder.data_dir}; pass download=True to download "
            "and prepare it, or data_dir= where it is prepared"
        ) from None
    except ValueError as e:
        raise DataError(f"tfds:{name}: split {split!r}: {e}") from None

    keys = [k for k in (*_REQUIRED, *_OPTIONAL) if k in features]
    with_genres = "movie_genres" in features

    def select(example: dict[str, Any]) -> dict[str, Any]:
        out = {k: example[k] for k in keys}
        if with_genres:
            # Genre lists differ in length: padded per batch, cut back by their count.
            out["movie_genres"] = example["movie_genres"]
            out["genre_count"] = tf.size(example["movie_genres"])
        return out

    columns: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    genre_values: list[np.ndarray] = []
    genre_counts: list[np.ndarray] = []
    for batch in tfds.as_numpy(ds.map(select).padded_batch(batch_size)):
        for k in keys:
            columns[k].append(batch[k])
        if with_genres:
            counts = batch["genre_count"]
            width = batch["movie_genres"].shape[1]
            genre_values.append(batch["movie_genres"][np.arange(width) < counts[:, None]])
            genre_counts.append(counts)
    col = {k: _to_numpy(v) for k, v in columns.items()}
    if col["user_id"].size == 0:
        raise DataError(f"tfds:{name}: split {split!r} has no examples")

    side: list[SideBuilder] = [_item_side(col, genre_values, genre_counts, features)]
    user_cols = {_USER_FEATURES[k]: _as_text(k, col[k]) for k in _USER_FEATURES if k in col}
    if user_cols:
        side.append(_user_side(col["user_id"], user_cols))
    return build_dataset(
        name,
        col["user_id"],
        col["movie_id"],
        col["user_rating"],
        col.get("timestamp"),
        source=f"tfds:{name} ({split})",
        duplicates=duplicates,
        rating_range=(0.5, 5.0) if name.startswith("movielens/") else None,
        # A "line" in messages is the example's position in the split.
        first_line=0,
        side=side,
    )


def _to_numpy(parts: list[np.ndarray]) -> np.ndarray:
    """Concatenates batches; TFDS strings (bytes objects) become str."""
    arr = np.concatenate(parts)
    if arr.dtype == object:
        return np.char.decode(arr.astype(np.bytes_), "utf-8")
    return arr


def _as_text(feature: str, values: np.ndarray) -> np.ndarray:
    """A user feature column as categorical strings: [N] -> [N] str."""
    if feature == "user_gender":
        return np.where(values, "M", "F")
    if values.dtype.kind == "f":
        return np.array([f"{v:g}" for v in values.tolist()], dtype=np.str_)
    return values.astype(np.str_)


def _item_side(
    col: dict[str, np.ndarray],
    genre_values: list[np.ndarray],
    genre_counts: list[np.ndarray],
    features: Any,
) -> SideBuilder:
    """Titles, years and genres of each movie, from its first example."""
    movies, first = np.unique(col["movie_id"], return_index=True)
    titles = col["movie_title"][first] if "movie_title" in col else None
    genres = None
    if genre_counts:
        counts = np.concatenate(genre_counts)
        offsets = np.r_[0, np.cumsum(counts)]
        names = np.asarray(features["movie_genres"].feature.names, dtype=np.str_)
        labels = names[np.concatenate(genre_values)]
        genres = [
            [g for g in labels[offsets[i] : offsets[i + 1]].tolist() if g != NO_GENRE]
            for i in first.tolist()
        ]

    def build(user_vocab: np.ndarray, item_vocab: np.ndarray) -> dict[str, Any]:
        pos = vocab_lookup(item_vocab, movies, np.arange(movies.size), -1)
        out: dict[str, Any] = {}
        if titles is not None:
            out["item_titles"] = titles[pos]
            year = np.array([title_year(t) for t in titles[pos].tolist()], dtype=np.float32)
            out["item_numeric"] = {"year": year}
        if genres is not None:
            rows = Ragged.from_lists([genres[p] for p in pos.tolist()])
            out["item_multi_hot"] = {"genres": rows}
            out["item_tags"] = rows
        return out

    return build


def _user_side(raw_users: np.ndarray, features: dict[str, np.ndarray]) -> SideBuilder:
    """User features from the first example of each user."""
    users, first = np.unique(raw_users, return_index=True)

    def build(user_vocab: np.ndarray, item_vocab: np.ndarray) -> dict[str, Any]:
        return {
            "user_features": {
                k: vocab_lookup(user_vocab, users, v[first], "") for k, v in features.items()
            }
        }

    return build


__all__ = ["TFDS_EXTRA", "load_tfds"]
