"""k-means codebooks of SIFT descriptors, for "vlad" and "bow" pooling (no OpenCV needed)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
from pathlib import Path

import numpy as np

from shortrec_jax.data.dataset import DataError
from shortrec_jax.features.video.config import DESCRIPTOR_DIM
from shortrec_jax.features.video.vectors import read_npz
from shortrec_jax.io import write_atomic

_CODEBOOK_FORMAT = "shortrec_jax.sift_codebook"
# The version of this file format.
_VERSION = 1


@dataclasses.dataclass(frozen=True, eq=False)
class Codebook:
    """k-means centres of SIFT descriptors, for "vlad" and "bow" pooling.

    Attributes:
      centers: [K, 128] float32.
      root_sift: whether the descriptors it was learned from were RootSIFT; the descriptors it
        encodes must be the same kind.
    """

    centers: np.ndarray
    root_sift: bool

    def __post_init__(self) -> None:
        c = self.centers
        if c.ndim != 2 or c.shape[1] != DESCRIPTOR_DIM or c.shape[0] < 1 or c.dtype != np.float32:
            raise ValueError(f"codebook centers must be [K, 128] float32, got {c.shape} {c.dtype}")

    @property
    def size(self) -> int:
        return int(self.centers.shape[0])

    def sha256(self) -> str:
        """Identifies the codebook in the metadata of the vectors it encoded."""
        h = hashlib.sha256(self.centers.tobytes())
        h.update(b"root" if self.root_sift else b"plain")
        return h.hexdigest()

    def assign(self, descriptors: np.ndarray) -> np.ndarray:
        """Nearest centre of each descriptor: [n, 128] -> [n] int64 (ties: the lowest index)."""
        return _nearest(descriptors.astype(np.float64), self.centers.astype(np.float64))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes an .npz (loadable with allow_pickle=False) to a temporary name, then renames."""
        buf = io.BytesIO()
        np.savez(
            buf,
            format=np.array(_CODEBOOK_FORMAT),
            centers=self.centers,
            root_sift=np.array(self.root_sift),
        )
        write_atomic(Path(path), buf.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Codebook:
        """Reads a codebook written by `save` (allow_pickle=False).

        Raises:
          DataError: a missing or malformed file, naming it.
        """
        arrays = read_npz(path, "a SIFT codebook")
        if str(arrays.get("format", "")) != _CODEBOOK_FORMAT:
            raise DataError(f"{path}: not a SIFT codebook (format {_CODEBOOK_FORMAT!r})")
        try:
            return cls(centers=arrays["centers"], root_sift=bool(arrays["root_sift"]))
        except (KeyError, ValueError) as e:
            raise DataError(f"{path}: malformed SIFT codebook ({e})") from None


def _nearest(x: np.ndarray, centers: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """Index of the nearest centre: x [n, d], centers [k, d] (float64) -> [n] int64.

    |x - c|^2 = |x|^2 - 2 x.c + |c|^2, and |x|^2 does not change the argmin. Chunked so that
    the [chunk, k] distance block stays small for large codebooks.
    """
    c2 = (centers * centers).sum(axis=1)  # [k]
    out = np.empty(x.shape[0], dtype=np.int64)
    for s in range(0, x.shape[0], chunk):
        block = x[s : s + chunk]
        out[s : s + chunk] = np.argmin(c2[None, :] - 2.0 * block @ centers.T, axis=1)  # [n', k]
    return out


def fit_codebook(
    descriptors: np.ndarray, size: int, *, root_sift: bool, seed: int = 0, iterations: int = 25
) -> Codebook:
    """k-means (k-means++ seeding, then Lloyd iterations) on SIFT descriptors.

    Deterministic for a given seed: every random choice comes from `np.random.default_rng`,
    and an empty cluster is moved to the descriptor farthest from its centre.

    Args:
      descriptors: [N, 128] float32, N >= size.
      size: K, the number of centres.
      root_sift: whether `descriptors` are RootSIFT (recorded in the codebook).
      seed: seeds the k-means++ choices.
      iterations: at most this many Lloyd steps (it stops earlier when nothing moves).
    """
    x = np.asarray(descriptors, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != DESCRIPTOR_DIM:
        raise ValueError(f"descriptors must be [N, 128], got {x.shape}")
    if not 1 <= size <= x.shape[0]:
        raise ValueError(f"codebook size {size} needs 1 <= size <= N = {x.shape[0]} descriptors")
    rng = np.random.default_rng(seed)
    centers = np.empty((size, DESCRIPTOR_DIM), dtype=np.float64)
    centers[0] = x[rng.integers(x.shape[0])]
    d2 = ((x - centers[0]) ** 2).sum(axis=1)  # [N]
    for j in range(1, size):
        total = d2.sum()
        p = d2 / total if total > 0 else None
        centers[j] = x[rng.choice(x.shape[0], p=p)]
        d2 = np.minimum(d2, ((x - centers[j]) ** 2).sum(axis=1))
    for _ in range(iterations):
        assign = _nearest(x, centers)  # [N]
        counts = np.bincount(assign, minlength=size)  # [K]
        sums = np.zeros_like(centers)
        np.add.at(sums, assign, x)  # [K, 128]
        new = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], centers)
        for j in np.flatnonzero(counts == 0):
            far = int(np.argmax(((x - new[assign]) ** 2).sum(axis=1)))
            new[j] = x[far]
            assign[far] = j
        if np.array_equal(new, centers):
            break
        centers = new
    return Codebook(centers=centers.astype(np.float32), root_sift=root_sift)
