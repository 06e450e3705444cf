"""KuaiRec: a Kuaishou short-video log with a fully observed small matrix (Gao et al., CIKM 2022).

Files read from the data folder (`KuaiRec 2.0/data/`; the folder above it works too):
  `small_matrix.csv` / `big_matrix.csv` (required, one of them): user_id, video_id,
    play_duration (ms), video_duration (ms), time, date, timestamp (unix seconds, float),
    watch_ratio. The small matrix is 1,411 users x 3,327 videos, almost fully observed; the big
    one 7,176 users x 10,728 videos, sparse.
  `item_categories.csv` (optional): video_id, feat, where feat is a quoted list such as
    "[27, 9]" of category ids -> the multi-hot "tags" and `item_tags`.
  `user_features.csv` (optional): user_id and categorical columns (user_active_degree,
    is_live_streamer, ..., onehot_feat0..17). A raw count such as `fans_user_num` is left out
    when its bucketed twin `fans_user_num_range` exists, since `Dataset.user_features` is
    categorical; every other column is kept as a categorical feature.
Not read: `social_network.csv` (friend lists), `item_daily_features.csv`,
`kuairec_caption_category.csv`.

Mapping: rating = watch_ratio (play time over video length; finite and >= 0, often above 1);
`extra["label"]` = 1.0 where watch_ratio >= `label_threshold` (the KuaiRec paper's "liked"
threshold is 2.0), else 0.0; `extra["play_duration"]` and `item_numeric["duration"]` are in
seconds. Every row is a view, so repeated views are kept by default (`duplicates="keep"`).
The catalogue is the videos of the chosen matrix only: adding the other videos of
item_categories.csv would put unobserved videos into the small matrix's full-ranking
evaluation.

Some rows have no timestamp (an empty field or "nan"). By default they are dropped and counted
in `Dataset.dropped` (time-based splits and sequences need a time); `missing_timestamps="zero"`
keeps them with timestamp 0 instead, which keeps the small matrix fully observed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from shortrec_jax.data.build import SideBuilder, build_dataset, vocab_lookup
from shortrec_jax.data.dataset import DataError, Dataset, Ragged
from shortrec_jax.data.ids import canonical_ids, integer_ids
from shortrec_jax.data.text_table import read_file, read_named_columns

MATRICES = ("small", "big")
MISSING_TIMESTAMPS = ("drop", "zero")
_REQUIRED = ("user_id", "video_id", "watch_ratio")
_OPTIONAL = ("timestamp", "play_duration", "video_duration")


def load_kuairec(
    folder: str | os.PathLike[str],
    *,
    matrix: str = "small",
    label_threshold: float = 2.0,
    duplicates: str = "keep",
    missing_timestamps: str = "drop",
) -> Dataset:
    """Loads KuaiRec's small or big matrix with its item categories and user features.

    Args:
      folder: KuaiRec's data folder (or the folder holding `data/`).
      matrix: "small" (small_matrix.csv) or "big" (big_matrix.csv).
      label_threshold: watch ratio at or above which `extra["label"]` is 1.0.
      duplicates: the policy for repeated (user, video) pairs (see build.DUPLICATE_POLICIES).
      missing_timestamps: "drop" rows without a timestamp (counted in `Dataset.dropped`), or
        give them timestamp 0 ("zero").

    Returns:
      The data set "kuairec-<matrix>": ratings [N] float32 watch ratios, timestamps [N] int64
      unix seconds, extra {"label": [N] float32, "play_duration": [N] float32 seconds},
      item_numeric {"duration": [I] float32 seconds}, the multi-hot "tags" and item_tags,
      and the user features.
    """
    if matrix not in MATRICES:
        raise DataError(f"matrix={matrix!r} is not one of {MATRICES}")
    if missing_timestamps not in MISSING_TIMESTAMPS:
        raise DataError(
            f"missing_timestamps={missing_timestamps!r} is not one of {MISSING_TIMESTAMPS}"
        )
    file = f"{matrix}_matrix.csv"
    folder = Path(folder)
    data_dir = folder / "data" if (folder / "data" / file).exists() else folder
    path = data_dir / file
    if not path.exists():
        raise DataError(
            f"{folder}: no {file} (KuaiRec's data folder holds small_matrix.csv and big_matrix.csv)"
        )
    source = str(path)
    col, lines = read_named_columns(
        read_file(path),
        source=source,
        required=_REQUIRED,
        optional=_OPTIONAL,
        numeric=True,
        int_columns=("user_id", "video_id"),
        empty_as_nan=True,
        require_data=True,
    )
    users = integer_ids(col["user_id"], source=source, column="user_id", lines=lines)
    videos = integer_ids(col["video_id"], source=source, column="video_id", lines=lines)
    n = users.shape[0]
    seconds = {k: col[k] / 1000.0 for k in ("play_duration", "video_duration") if k in col}

    timestamps = col.get("timestamp")
    dropped: dict[str, int] = {}
    keep = np.ones(n, dtype=bool)
    if timestamps is not None:
        missing = ~np.isfinite(timestamps)
        if missing_timestamps == "drop":
            keep = ~missing
            if np.any(missing):
                dropped["rows without a timestamp"] = int(missing.sum())
        else:
            timestamps = np.where(missing, 0.0, timestamps)
        timestamps = timestamps[keep]

    side: list[SideBuilder] = []
    if "video_duration" in seconds:
        side.append(_duration_side(videos, seconds["video_duration"]))
    categories = data_dir / "item_categories.csv"
    if categories.exists():
        side.append(_category_side(categories))
    user_path = data_dir / "user_features.csv"
    if user_path.exists():
        side.append(_user_side(user_path))

    ratings = col["watch_ratio"][keep]
    extra = {"label": (ratings >= label_threshold).astype(np.float32)}
    if "play_duration" in seconds:
        extra["play_duration"] = seconds["play_duration"][keep].astype(np.float32)
    return build_dataset(
        f"kuairec-{matrix}",
        users[keep],
        videos[keep],
        ratings,
        timestamps,
        source=source,
        duplicates=duplicates,
        rating_range=(0.0, np.inf),
        line_numbers=lines[keep],
        extra=extra,
        dropped=dropped,
        side=side,
    )


def _duration_side(videos: np.ndarray, durations: np.ndarray) -> SideBuilder:
    """item_numeric["duration"]: the first finite duration given for each video, else NaN.

    Args:
      videos: [N] int64 raw video ids; durations: [N] float64 seconds (NaN where missing).
    """
    known = np.isfinite(durations)
    raw, first = np.unique(videos[known], return_index=True)
    values = durations[known][first].astype(np.float32)

    def build(user_vocab: np.ndarray, item_vocab: np.ndarray) -> dict[str, Any]:
        duration = vocab_lookup(item_vocab, raw.astype(np.str_), values, np.nan)
        return {"item_numeric": {"duration": duration}}

    return build


def _category_side(path: Path) -> SideBuilder:
    """The "tags" multi-hot column and item_tags from item_categories.csv."""
    source = str(path)
    col, lines = read_named_columns(
        read_file(path), source=source, required=("video_id", "feat"), numeric=False, quotechar='"'
    )
    raw = canonical_ids(col["video_id"], source=source, column="video_id", lines=lines)
    rows = []
    for feat, line in zip(col["feat"].tolist(), lines.tolist(), strict=True):
        feat = feat.strip()
        if not (feat.startswith("[") and feat.endswith("]")):
            raise DataError(
                f"{source}, line {line}: column 'feat' must be a list like \"[27, 9]\", "
                f"got {feat!r}"
            )
        rows.append([t.strip() for t in feat[1:-1].split(",") if t.strip()])

    def build(user_vocab: np.ndarray, item_vocab: np.ndarray) -> dict[str, Any]:
        pos = vocab_lookup(item_vocab, raw, np.arange(raw.size), -1).tolist()
        tags = Ragged.from_lists([rows[p] if p >= 0 else [] for p in pos])
        return {"item_multi_hot": {"tags": tags}, "item_tags": tags}

    return build


def _user_side(path: Path) -> SideBuilder:
    """Categorical user features from user_features.csv (see the module docstring)."""
    source = str(path)
    col, lines = read_named_columns(
        read_file(path),
        source=source,
        required=("user_id",),
        optional=None,
        numeric=False,
        quotechar='"',
    )
    raw = canonical_ids(col.pop("user_id"), source=source, column="user_id", lines=lines)
    features = {c: np.char.strip(v) for c, v in col.items() if f"{c}_range" not in col}

    def build(user_vocab: np.ndarray, item_vocab: np.ndarray) -> dict[str, Any]:
        return {
            "user_features": {c: vocab_lookup(user_vocab, raw, v, "") for c, v in features.items()}
        }

    return build


__all__ = ["MATRICES", "load_kuairec"]
