"""Vector files: content vectors keyed by video or item id in one `.npz`, and their
alignment with a data set's items. Needs no OpenCV.

Data sets without video files (MovieLens) take a content-vector file from any source: write
`save_vectors("content.npz", ids, vectors)` with the raw item ids and a [V, D] float32 array
(genre and year encodings, knowledge-graph embeddings, text embeddings, ...) and load it with
`load_item_vectors`. `id_map` maps item ids to video ids where the two differ.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shortrec_jax.data.dataset import DataError, Dataset
from shortrec_jax.io import write_atomic

logger = logging.getLogger(__name__)

_FORMAT = "shortrec_jax.video_vectors"
# The version of this file format.
_VERSION = 1


@dataclasses.dataclass(frozen=True, eq=False)
class VideoVectors:
    """The contents of a vector file.

    Attributes:
      ids: [V] str, distinct video ids (file stems) or item ids; sorted in files written by
        `save_vectors`.
      vectors: [V, D] float32.
      num_keyframes: [V] int32 (0 where the file does not say).
      num_descriptors: [V] int32; 0 marks a video without keypoints (zero vector). -1 where
        the file does not say (vectors from another source).
      meta: how the vectors were made ({"config": ..., "codebook_sha256": ...}), or {}.
    """

    ids: np.ndarray
    vectors: np.ndarray
    num_keyframes: np.ndarray
    num_descriptors: np.ndarray
    meta: Mapping[str, Any]


def save_vectors(
    path: str | os.PathLike[str],
    ids: Sequence[str] | np.ndarray,
    vectors: np.ndarray,
    *,
    num_keyframes: np.ndarray | None = None,
    num_descriptors: np.ndarray | None = None,
    meta: Mapping[str, Any] | None = None,
) -> None:
    """Writes a vector file: any content vectors keyed by id, for `load_item_vectors`.

    The file is an .npz that loads with allow_pickle=False ("ids" [V] str, "vectors" [V, D]
    float32, "num_keyframes" and "num_descriptors" [V] int32, "meta" a JSON string), rows
    sorted by id, written to a temporary name and renamed.

    Args:
      path: the .npz to write.
      ids: [V] distinct ids (item ids, or video file stems).
      vectors: [V, D] finite.
      num_keyframes, num_descriptors: [V] int, from video extraction; omitted elsewhere.
      meta: JSON-serialisable description of how the vectors were made.
    """
    ids = np.asarray(ids, dtype=np.str_)
    vectors = np.asarray(vectors, dtype=np.float32)
    v = ids.shape[0]
    if ids.ndim != 1 or vectors.ndim != 2 or vectors.shape[0] != v:
        raise ValueError(f"need ids [V] and vectors [V, D], got {ids.shape} and {vectors.shape}")
    if np.unique(ids).size != v:
        raise ValueError(f"{path}: ids are not distinct")
    if not np.all(np.isfinite(vectors)):
        raise ValueError(f"{path}: vectors are not all finite")
    order = np.argsort(ids, kind="stable")
    counts = {
        "num_keyframes": num_keyframes if num_keyframes is not None else np.zeros(v),
        "num_descriptors": num_descriptors if num_descriptors is not None else np.full(v, -1),
    }
    buf = io.BytesIO()
    np.savez(
        buf,
        ids=ids[order],
        vectors=vectors[order],
        **{k: np.asarray(c, dtype=np.int32)[order] for k, c in counts.items()},
        meta=np.array(json.dumps({"format": _FORMAT, "version": _VERSION, **(meta or {})})),
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, buf.getvalue())


def read_npz(path: str | os.PathLike[str], what: str) -> dict[str, np.ndarray]:
    """All arrays of an .npz (allow_pickle=False); a missing or malformed file is a
    DataError naming it and `what` it should be ("a vector file")."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot read {what} ({e})") from None


def read_vectors(path: str | os.PathLike[str]) -> VideoVectors:
    """Reads a vector file written by `save_vectors` (allow_pickle=False).

    Only "ids" and "vectors" are required, so any .npz with those two works.

    Raises:
      DataError: a missing or malformed file, naming it.
    """
    arrays = read_npz(path, "a vector file")
    if "ids" not in arrays or "vectors" not in arrays:
        raise DataError(
            f"{path}: a vector file needs arrays 'ids' and 'vectors', has {sorted(arrays)}"
        )
    ids, vectors = arrays["ids"], arrays["vectors"]
    if ids.ndim != 1 or ids.dtype.kind not in "US":
        raise DataError(f"{path}: 'ids' must be a [V] str array, got {ids.shape} {ids.dtype}")
    ids = ids.astype(np.str_)
    if vectors.ndim != 2 or vectors.shape[0] != ids.shape[0]:
        raise DataError(f"{path}: 'vectors' must be [V={ids.shape[0]}, D], got {vectors.shape}")
    if not np.all(np.isfinite(vectors)):
        raise DataError(f"{path}: 'vectors' has non-finite values")
    if np.unique(ids).size != ids.size:
        raise DataError(f"{path}: 'ids' are not distinct")
    v = ids.shape[0]
    try:
        meta = json.loads(str(arrays["meta"])) if "meta" in arrays else {}
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: 'meta' is not JSON ({e})") from None
    return VideoVectors(
        ids=ids,
        vectors=vectors.astype(np.float32, copy=False),
        num_keyframes=arrays.get("num_keyframes", np.zeros(v)).astype(np.int32),
        num_descriptors=arrays.get("num_descriptors", np.full(v, -1)).astype(np.int32),
        meta=meta,
    )


def align_vectors(
    ids: np.ndarray,
    vectors: np.ndarray,
    item_ids: np.ndarray,
    *,
    id_map: Mapping[str, str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Puts vectors keyed by id in the order of a data set's items.

    Args:
      ids: [V] str, distinct.
      vectors: [V, D].
      item_ids: [I] str, the raw item ids (`Dataset.item_ids`).
      id_map: item id -> id in `ids`, where they differ (e.g. item "42" is video "clip_042");
        an item it does not list has no vector. None: the ids are the item ids.

    Returns:
      ([I, D] float32 with zero rows for items without a vector, [I] bool found).
    """
    ids = np.asarray(ids).astype(np.str_)
    keys = np.asarray(item_ids).astype(np.str_)
    if id_map is not None:
        keys = np.array([id_map.get(k, "") for k in keys.tolist()], dtype=np.str_)
    out = np.zeros((keys.shape[0], vectors.shape[1]), dtype=np.float32)
    if ids.size == 0:
        return out, np.zeros(keys.shape[0], dtype=bool)
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    pos = np.minimum(np.searchsorted(sorted_ids, keys), ids.size - 1)
    found = (sorted_ids[pos] == keys) & (keys != "")
    out[found] = vectors[order[pos[found]]]
    return out, found


def load_item_vectors(
    npz_path: str | os.PathLike[str],
    dataset: Dataset,
    *,
    id_map: Mapping[str, str] | None = None,
) -> np.ndarray:
    """The vectors of a vector file in the order of `dataset.item_ids`.

    Items without a vector get zeros (the encoder's value for an unknown item too); how many
    is logged as a warning. The result is ready for
    `dataclasses.replace(dataset, item_vectors=...)`.

    Args:
      npz_path: a file written by `extract_folder` or `save_vectors`.
      dataset: whose item order to follow.
      id_map: item id -> video id, where they differ (see `align_vectors`).

    Returns:
      [I, D] float32.
    """
    stored = read_vectors(npz_path)
    vectors, found = align_vectors(stored.ids, stored.vectors, dataset.item_ids, id_map=id_map)
    missing = int(dataset.num_items - found.sum())
    if missing:
        logger.warning(
            "%s: %d of %d items of %s have no vector and get zeros",
            npz_path,
            missing,
            dataset.num_items,
            dataset.name,
        )
    return vectors
