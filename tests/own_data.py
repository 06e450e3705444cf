"""Small generated data sets of the shapes a new user brings (shared by the own-data tests).

ratings_csv        a GroupLens CSV folder (ratings.csv, movies.csv), no demographics.
sequence_file      "user item" per line, time-ordered, no ratings and no side information.
videos             an interaction CSV plus a video metadata CSV (duration, category, tags).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

NUM_USERS = 30
NUM_ITEMS = 40
PER_USER = 12


def _pairs(seed: int) -> list[tuple[int, int]]:
    rng = np.random.default_rng(seed)
    pairs = []
    for u in range(NUM_USERS):
        # Users prefer items near their own index: a pattern a model can learn in one epoch.
        items = (u + rng.choice(NUM_ITEMS // 2, PER_USER, replace=False)) % NUM_ITEMS
        pairs += [(u, int(i)) for i in items]
    return pairs


def ratings_csv(folder: Path, seed: int = 0) -> Path:
    """A GroupLens CSV release (ratings.csv + movies.csv, no user file): 360 ratings."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["userId,movieId,rating,timestamp"]
    for t, (u, i) in enumerate(_pairs(seed)):
        lines.append(f"{u + 1},{i + 1},{rng.integers(1, 6)},{1_000_000 + t}")
    (folder / "ratings.csv").write_text("\n".join(lines) + "\n")
    genres = ("Action", "Comedy", "Drama", "Horror")
    movies = ["movieId,title,genres"]
    movies += [
        f"{i + 1},Film {i} ({1990 + i % 20}),{genres[i % 4]}|{genres[(i + 1) % 4]}"
        for i in range(NUM_ITEMS)
    ]
    (folder / "movies.csv").write_text("\n".join(movies) + "\n")
    return folder


def sequence_file(folder: Path, seed: int = 0) -> Path:
    """An implicit "user item" file, one interaction per line in time order."""
    lines = [f"u{u} i{i}" for u, i in _pairs(seed)]
    path = folder / "seq.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def videos(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """(interactions.csv: user_id,video_id,watch_ratio,time; videos.csv: video_id,duration,
    category,tags). Video 7 has no duration; video "v_unwatched" has no interaction."""
    rng = np.random.default_rng(seed)
    inter = ["user_id,video_id,watch_ratio,time"]
    for t, (u, i) in enumerate(_pairs(seed)):
        inter.append(f"user{u},v{i},{rng.uniform(0, 8):.2f},{1_600_000_000 + 60 * t}")
    meta = ["video_id,duration,category,tags,author"]
    for i in range(NUM_ITEMS):
        duration = "" if i == 7 else f"{5 + 3 * i}.5"
        meta.append(f"v{i},{duration},cat{i % 4},t{i % 3}|t{i % 5},a{i}")
    meta.append("v_unwatched,12,cat0,t1,a99")
    inter_path, meta_path = folder / "interactions.csv", folder / "videos.csv"
    inter_path.write_text("\n".join(inter) + "\n")
    meta_path.write_text("\n".join(meta) + "\n")
    return inter_path, meta_path


def video_overrides(inter: Path, meta: Path) -> list[str]:
    """The command-line flags that point a config at `videos()` (source and side file)."""
    return [
        f"--config.data.source=csv:{inter}",
        "--config.data.source_options.columns.user=user_id",
        "--config.data.source_options.columns.item=video_id",
        "--config.data.source_options.columns.rating=watch_ratio",
        "--config.data.source_options.columns.timestamp=time",
        f"--config.data.item_side.path={meta}",
        "--config.data.item_side.id_column=video_id",
        "--config.data.item_side.columns=duration:numeric,category:categorical,tags:multi_hot",
    ]
