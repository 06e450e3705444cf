"""SIFT keyframe vectors of video files: the content feature of the study's Fig. 3.

The study (Cao, IJCSIT 4(1), 2024, section 2.1.4) extracts keyframes from each short video,
describes them with SIFT and feeds a 128-dimensional vector into the embedding layer of
xDeepFM, so that a video nobody has watched yet still has a representation. Here:

1. **Keyframes** (`read_keyframes`): one pass over the decoded frames. A frame starts a new
   shot when the mean absolute difference of its small grayscale thumbnail from the previous
   frame's exceeds `KeyframeConfig.cut_threshold`; the first frame of the video and of the
   strongest shots are the keyframes (at most `max_keyframes`). A video with fewer shots than
   `min_keyframes` (one long take, slow fades) is filled up with uniformly spaced frames.
2. **Descriptors** (`sift_descriptors`): OpenCV SIFT on each keyframe, resized to a fixed
   width so that copies of a video at different resolutions give comparable keypoints;
   optionally RootSIFT (Arandjelovic & Zisserman, CVPR 2012).
3. **Pooling** (`pool_descriptors`): "mean" (the study): the mean descriptor of each keyframe,
   averaged over keyframes and L2-normalised, a [128] vector. "vlad" ([K * 128]) and "bow"
   ([K]) encode descriptors against a k-means `Codebook` learned from a set of videos.
4. **Batches** (`extract_folder`): every video of a folder, in several processes, into one
   `.npz` keyed by video id (the file stem), resumable, with a JSON report of the videos
   that could not be read.

A video in which SIFT finds no keypoint at all (a black screen, a flat colour) gets the zero
vector and `num_descriptors == 0`, so it is kept (its id maps to "no content signal", the
same as an item without a video) and listed under "no_keypoints" in the report.

Same file, same configuration, same OpenCV build -> bitwise the same vector: decoding and SIFT
are deterministic (OpenCV sorts keypoints before it keeps the strongest), and pooling sums in
float64 in a fixed order.

Feeding a model. The vectors become a dense field of the xDeepFM feature encoder
(`shortrec_jax.data.features`), which projects them into the embedding space:

    python -m shortrec_jax.features.video --videos=videos/ --out=vectors.npz --workers=2

    ds = load("kuairec:data/KuaiRec")  # video ids are the item ids: videos/<video_id>.mp4
    ds = dataclasses.replace(ds, item_vectors=load_item_vectors("vectors.npz", ds))
    fields = [*fields, FieldSpec("keyframes", "dense", column="item_vectors")]

Data sets without video files (MovieLens) take a content-vector file from any source: write
`save_vectors("content.npz", ids, vectors)` with the raw item ids and a [V, D] float32 array
(genre and year encodings, knowledge-graph embeddings, text embeddings, ...) and load it the
same way. `id_map` maps item ids to video ids where the two differ.

OpenCV is the optional extra `video`: `pip install "shortrec-jax[video]"`. It is imported on
first use, so importing this module without it works and only extraction fails.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import fnmatch
import functools
import hashlib
import heapq
import io
import json
import logging
import multiprocessing
import os
import sys
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from shortrec_jax.data.dataset import DataError, Dataset
from shortrec_jax.io import write_atomic

logger = logging.getLogger(__name__)

DESCRIPTOR_DIM = 128
POOLINGS = ("mean", "vlad", "bow")
# File names (matched case-insensitively) that `extract_folder` treats as videos by default.
VIDEO_PATTERNS = (
    "*.mp4",
    "*.m4v",
    "*.mov",
    "*.avi",
    "*.mkv",
    "*.webm",
    "*.flv",
    "*.wmv",
    "*.mpg",
    "*.mpeg",
    "*.3gp",
)
_FORMAT = "shortrec_jax.video_vectors"
_CODEBOOK_FORMAT = "shortrec_jax.sift_codebook"
_VERSION = 1
_INSTALL_HINT = 'pip install "shortrec-jax[video]"'


def _cv2() -> ModuleType:
    """OpenCV, imported on first use so that the rest of the library never needs it."""
    try:
        import cv2
    except ImportError as e:
        raise ImportError(
            f"video features need OpenCV (opencv-python-headless): {_INSTALL_HINT}"
        ) from e
    if not hasattr(cv2, "SIFT_create"):
        raise ImportError(
            f"OpenCV {cv2.__version__} has no SIFT (it needs >= 4.4): {_INSTALL_HINT}"
        )
    return cv2


# -- configuration -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class KeyframeConfig:
    """How keyframes are chosen from a video.

    Attributes:
      max_keyframes: at most this many keyframes per video: the first frame and the first
        frames of the max_keyframes - 1 strongest shot cuts.
      min_keyframes: when the video has fewer shots than this, uniformly spaced frames fill
        the keyframes up to this count (fewer only if the video has fewer frames).
      cut_threshold: a frame starts a new shot when the mean absolute difference of its
        grayscale thumbnail from the previous frame's exceeds this, on the 0-255 scale.
        Motion inside a shot stays well below 30; a cut to another scene is far above it.
      min_shot_frames: a cut fewer than this many frames after the previous one is ignored,
        so that a flash or a fade yields one cut, not a run of them.
      diff_width: width in pixels of the thumbnails compared for cuts; small enough that noise
        and compression artefacts average out.
      frame_width: keyframes are resized to this width (aspect ratio kept) before SIFT, so that
        copies of one video at different resolutions yield comparable keypoints, and so that
        SIFT's cost does not grow with the source resolution. Best at most the width of the
        smallest videos: an upscaled copy finds other keypoints than its larger original.
      min_decoded_fraction: a video that decodes fewer than this fraction of the frames its
        container declares is reported as truncated.
    """

    max_keyframes: int = 8
    min_keyframes: int = 4
    cut_threshold: float = 30.0
    min_shot_frames: int = 4
    diff_width: int = 64
    frame_width: int = 320
    min_decoded_fraction: float = 0.9

    def __post_init__(self) -> None:
        if not 1 <= self.min_keyframes <= self.max_keyframes:
            raise ValueError(
                f"need 1 <= min_keyframes <= max_keyframes, got {self.min_keyframes}, "
                f"{self.max_keyframes}"
            )
        if self.cut_threshold <= 0 or self.min_shot_frames < 1:
            raise ValueError(
                f"cut_threshold must be > 0 and min_shot_frames >= 1, got {self.cut_threshold}, "
                f"{self.min_shot_frames}"
            )
        if self.diff_width < 8 or self.frame_width < 16:
            raise ValueError(
                f"diff_width must be >= 8 and frame_width >= 16, got {self.diff_width}, "
                f"{self.frame_width}"
            )
        if not 0.0 <= self.min_decoded_fraction <= 1.0:
            raise ValueError(
                f"min_decoded_fraction must be in [0, 1], got {self.min_decoded_fraction}"
            )


@dataclasses.dataclass(frozen=True)
class SiftConfig:
    """OpenCV SIFT parameters (`cv2.SIFT_create`) and the descriptor transform.

    Attributes:
      nfeatures: keep at most this many keypoints per keyframe, the strongest (0 = all).
      n_octave_layers: layers per octave of the scale space (Lowe's paper: 3).
      contrast_threshold: drops weak extrema in low-contrast regions (OpenCV default).
      edge_threshold: drops edge-like extrema (OpenCV default).
      sigma: blur of the first octave's base image (OpenCV default).
      root_sift: map each descriptor d to sqrt(d / |d|_1) (RootSIFT), which makes Euclidean
        distances behave like the Hellinger kernel and usually matches images better.
    """

    nfeatures: int = 500
    n_octave_layers: int = 3
    contrast_threshold: float = 0.04
    edge_threshold: float = 10.0
    sigma: float = 1.6
    root_sift: bool = False

    def __post_init__(self) -> None:
        if self.nfeatures < 0 or self.n_octave_layers < 1 or self.sigma <= 0:
            raise ValueError(
                f"need nfeatures >= 0, n_octave_layers >= 1 and sigma > 0, got {self.nfeatures}, "
                f"{self.n_octave_layers}, {self.sigma}"
            )


@dataclasses.dataclass(frozen=True)
class VideoFeatureConfig:
    """Everything that determines a video's vector.

    Attributes:
      keyframes: keyframe selection.
      sift: descriptor extraction.
      pooling: "mean" (the study's [128] vector), "vlad" ([K * 128]) or "bow" ([K]); the last
        two need a `Codebook` with K centres.
    """

    keyframes: KeyframeConfig = dataclasses.field(default_factory=KeyframeConfig)
    sift: SiftConfig = dataclasses.field(default_factory=SiftConfig)
    pooling: str = "mean"

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling {self.pooling!r} is not one of {POOLINGS}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the "config" recorded in a vector file's metadata)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> VideoFeatureConfig:
        """The inverse of `to_dict`, e.g. `from_dict(read_vectors(path).meta["config"])`."""
        return cls(
            keyframes=KeyframeConfig(**d["keyframes"]),
            sift=SiftConfig(**d["sift"]),
            pooling=d["pooling"],
        )


# -- results -----------------------------------------------------------------------------------


class VideoError(ValueError):
    """A video file that cannot be used: unreadable, not a video, or truncated."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason

    def __reduce__(self) -> tuple[type[VideoError], tuple[str, str]]:
        # Pickled by (path, reason), not by the message, so it survives a process boundary.
        return (VideoError, (self.path, self.reason))


@dataclasses.dataclass(frozen=True, eq=False)
class Keyframes:
    """Where the keyframes of one video are.

    Attributes:
      indices: [K] int64, frame numbers of the keyframes, increasing, 1 <= K <= max_keyframes.
      cuts: [C] int64, every detected shot cut (the first frame of each new shot), increasing;
        the keyframes keep the strongest max_keyframes - 1 of them.
      num_frames: the number of frames decoded.
      method: "shots" (first frame and shot starts), "uniform" (no cut: first frame and
        uniformly spaced frames) or "shots+uniform" (too few cuts, filled up uniformly).
    """

    indices: np.ndarray
    cuts: np.ndarray
    num_frames: int
    method: str


@dataclasses.dataclass(frozen=True, eq=False)
class VideoFeatures:
    """The vector of one video and how it was obtained.

    Attributes:
      vector: [D] float32, unit L2 norm, or all zeros when no keypoint was found
        (D = 128 for "mean" pooling).
      keyframes: the keyframes it was computed from.
      num_descriptors: SIFT descriptors over all keyframes; 0 means the zero vector.
    """

    vector: np.ndarray
    keyframes: Keyframes
    num_descriptors: int

    @property
    def no_keypoints(self) -> bool:
        return self.num_descriptors == 0


# -- keyframes ---------------------------------------------------------------------------------


class _KeyframeSelector:
    """Chooses keyframes in one pass with memory for about 3 * max_keyframes frames.

    The strongest cuts live in a min-heap of size max_keyframes - 1. The uniform fallback needs
    frames spread over a video of unknown length (containers may misreport it), so it keeps
    the frames whose number is a multiple of a stride, and doubles the stride (dropping every
    other kept frame) whenever more than 2 * max_keyframes are kept.
    """

    def __init__(self, config: KeyframeConfig) -> None:
        self.config = config
        self._cv = _cv2()
        self.num_frames = 0
        self.cuts: list[int] = []
        self._strongest: list[tuple[float, int, np.ndarray]] = []
        self._grid: dict[int, np.ndarray] = {}
        self._stride = 1
        self._first: np.ndarray | None = None
        self._prev_thumb: np.ndarray | None = None
        self._last_cut = 0
        self._thumb_size = (0, 0)
        self._frame_size = (0, 0)

    def add(self, frame: np.ndarray) -> None:
        """Takes the next decoded frame, [H, W, 3] uint8 BGR."""
        cv2 = self._cv
        cfg = self.config
        i = self.num_frames
        self.num_frames += 1
        if i == 0:
            # Sizes are fixed by the first frame, so a stream that changes resolution midway
            # still compares thumbnails of one shape.
            h, w = frame.shape[:2]
            self._thumb_size = (cfg.diff_width, max(1, round(cfg.diff_width * h / w)))
            self._frame_size = (cfg.frame_width, max(1, round(cfg.frame_width * h / w)))
        thumb = cv2.cvtColor(
            cv2.resize(frame, self._thumb_size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY
        )
        is_cut = False
        if self._prev_thumb is not None:
            score = float(cv2.absdiff(thumb, self._prev_thumb).mean())
            is_cut = score > cfg.cut_threshold and i - self._last_cut >= cfg.min_shot_frames
        self._prev_thumb = thumb
        on_grid = i % self._stride == 0
        if not (i == 0 or is_cut or on_grid):
            return
        image = self._keyframe_image(frame)
        if i == 0:
            self._first = image
        if is_cut:
            self.cuts.append(i)
            self._last_cut = i
            if cfg.max_keyframes > 1:
                heapq.heappush(self._strongest, (score, i, image))
                if len(self._strongest) > cfg.max_keyframes - 1:
                    heapq.heappop(self._strongest)
        if on_grid:
            self._grid[i] = image
            if len(self._grid) > 2 * cfg.max_keyframes:
                self._stride *= 2
                self._grid = {k: v for k, v in self._grid.items() if k % self._stride == 0}

    def _keyframe_image(self, frame: np.ndarray) -> np.ndarray:
        """[h, frame_width] uint8 grayscale."""
        cv2 = self._cv
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        shrink = gray.shape[1] > self._frame_size[0]
        interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        return cv2.resize(gray, self._frame_size, interpolation=interpolation)

    def finish(self) -> tuple[Keyframes, list[np.ndarray]]:
        assert self._first is not None, "finish() before any frame"
        chosen = {0: self._first}
        chosen.update({i: image for _, i, image in self._strongest})
        method = "shots"
        if len(chosen) < self.config.min_keyframes:
            # Uniform fill: min_keyframes evenly spaced target frames; the targets farthest
            # from the keyframes already chosen are served first, each by the nearest kept
            # frame, so the keyframes cover the video evenly around the shot starts.
            targets = np.linspace(0, self.num_frames - 1, self.config.min_keyframes)
            have = np.array(sorted(chosen))
            gaps = np.abs(targets[:, None] - have[None, :]).min(axis=1)  # [min_keyframes]
            for t in targets[np.argsort(-gaps, kind="stable")]:
                free = [k for k in sorted(self._grid) if k not in chosen]
                if not free or len(chosen) >= self.config.min_keyframes:
                    break
                k = min(free, key=lambda k, t=t: (abs(k - t), k))
                chosen[k] = self._grid[k]
            method = "shots+uniform" if self._strongest else "uniform"
        order = sorted(chosen)
        keyframes = Keyframes(
            indices=np.asarray(order, dtype=np.int64),
            cuts=np.asarray(self.cuts, dtype=np.int64),
            num_frames=self.num_frames,
            method=method,
        )
        return keyframes, [chosen[i] for i in order]


def read_keyframes(
    path: str | os.PathLike[str], config: KeyframeConfig | None = None
) -> tuple[Keyframes, list[np.ndarray]]:
    """Decodes a video and chooses its keyframes (see `KeyframeConfig`).

    Args:
      path: a video file that OpenCV's FFmpeg backend can read.
      config: keyframe selection; defaults to `KeyframeConfig()`.

    Returns:
      (keyframes, images): images[k] is keyframe k as [h, frame_width] uint8 grayscale, with
      h from the video's aspect ratio.

    Raises:
      VideoError: the file cannot be opened, has no decodable frame, or is truncated.
    """
    cv2 = _cv2()
    config = config or KeyframeConfig()
    # The FFmpeg backend explicitly: never OpenCV's image-sequence reader (which would take a
    # name containing "%d" for a pattern), and the same decoder for every file.
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    selector = _KeyframeSelector(config)
    try:
        if not cap.isOpened():
            raise VideoError(path, "cannot be opened as a video (OpenCV FFmpeg backend)")
        declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            selector.add(frame)
    except cv2.error as e:
        raise VideoError(path, f"decoding failed after {selector.num_frames} frames ({e})") from e
    finally:
        cap.release()
    n = selector.num_frames
    if n == 0:
        raise VideoError(path, "no frame could be decoded")
    if declared > 0 and n < config.min_decoded_fraction * declared:
        raise VideoError(path, f"truncated: decoded {n} of the {declared} frames it declares")
    return selector.finish()


# -- descriptors and pooling -------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _sift(config: SiftConfig) -> Any:
    """One SIFT detector per configuration and process (creating one allocates buffers)."""
    return _cv2().SIFT_create(
        nfeatures=config.nfeatures,
        nOctaveLayers=config.n_octave_layers,
        contrastThreshold=config.contrast_threshold,
        edgeThreshold=config.edge_threshold,
        sigma=config.sigma,
    )


def sift_descriptors(image: np.ndarray, config: SiftConfig | None = None) -> np.ndarray:
    """SIFT descriptors of one grayscale image.

    Args:
      image: [H, W] uint8.
      config: SIFT parameters; defaults to `SiftConfig()`.

    Returns:
      [n, 128] float32, n >= 0 (at most `nfeatures` when that is > 0); RootSIFT when
      `config.root_sift`.
    """
    config = config or SiftConfig()
    if image.ndim != 2 or image.dtype != np.uint8:
        raise ValueError(f"need an [H, W] uint8 image, got {image.shape} {image.dtype}")
    _, desc = _sift(config).detectAndCompute(image, None)
    if desc is None:
        return np.zeros((0, DESCRIPTOR_DIM), dtype=np.float32)
    desc = desc.astype(np.float32, copy=False)
    if config.root_sift:
        l1 = desc.sum(axis=1, keepdims=True)  # SIFT entries are >= 0
        desc = np.sqrt(desc / np.maximum(l1, np.float32(1e-12)))
    return desc


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
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (OSError, ValueError) as e:
            raise DataError(f"{path}: cannot read a SIFT codebook ({e})") from None
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


def pooled_dim(pooling: str, codebook: Codebook | None = None) -> int:
    """D, the length of a video's vector: 128 ("mean"), K ("bow") or K * 128 ("vlad")."""
    if pooling == "mean":
        return DESCRIPTOR_DIM
    if codebook is None:
        raise ValueError(f"pooling {pooling!r} needs a codebook")
    return codebook.size * (DESCRIPTOR_DIM if pooling == "vlad" else 1)


def pool_descriptors(
    per_keyframe: Sequence[np.ndarray], pooling: str = "mean", codebook: Codebook | None = None
) -> np.ndarray:
    """One vector from the descriptors of a video's keyframes.

    Args:
      per_keyframe: K arrays [n_k, 128] float32 (n_k may be 0).
      pooling: "mean": the mean descriptor of each keyframe, averaged over the keyframes that
        have any (each shot weighs the same, however textured). "bow": the mean over those
        keyframes of their histograms of nearest codebook centres. "vlad": the sums of the
        residuals to the nearest centre over all descriptors, each centre's sum L2-normalised
        (intra-normalisation, which damps repeated textures), then signed square root.
      codebook: the centres for "bow" and "vlad".

    Returns:
      [128] ("mean"), [K] ("bow") or [K * 128] ("vlad") float32, unit L2 norm; zeros when no
      keyframe has a descriptor.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling {pooling!r} is not one of {POOLINGS}")
    if pooling != "mean" and codebook is None:
        raise ValueError(f"pooling {pooling!r} needs a codebook")
    frames = [np.asarray(d, dtype=np.float64) for d in per_keyframe if len(d)]
    if not frames:
        return np.zeros(pooled_dim(pooling, codebook), dtype=np.float32)
    if pooling == "mean":
        v = np.mean([d.mean(axis=0) for d in frames], axis=0)  # [128]
    elif pooling == "bow":
        v = np.mean(
            [np.bincount(codebook.assign(d), minlength=codebook.size) / len(d) for d in frames],
            axis=0,
        )  # [K]
    else:
        x = np.concatenate(frames)  # [n, 128]
        assign = codebook.assign(x)
        residuals = np.zeros((codebook.size, DESCRIPTOR_DIM), dtype=np.float64)
        np.add.at(residuals, assign, x - codebook.centers[assign])  # [K, 128]
        norms = np.linalg.norm(residuals, axis=1, keepdims=True)
        residuals /= np.where(norms > 0, norms, 1.0)
        v = residuals.reshape(-1)  # [K * 128]
        v = np.sign(v) * np.sqrt(np.abs(v))
    norm = np.linalg.norm(v)
    return (v / norm if norm > 0 else v).astype(np.float32)


def _check_codebook(config: VideoFeatureConfig, codebook: Codebook | None) -> None:
    if config.pooling == "mean":
        return
    if codebook is None:
        raise ValueError(f"pooling {config.pooling!r} needs a codebook (see learn_codebook)")
    if codebook.root_sift != config.sift.root_sift:
        raise ValueError(
            f"the codebook was learned on {'RootSIFT' if codebook.root_sift else 'SIFT'} "
            f"descriptors but config.sift.root_sift={config.sift.root_sift}"
        )


def video_descriptors(
    path: str | os.PathLike[str], config: VideoFeatureConfig | None = None
) -> tuple[Keyframes, list[np.ndarray]]:
    """Keyframes of a video and their SIFT descriptors: K arrays [n_k, 128] float32.

    Raises:
      VideoError: as `read_keyframes`.
    """
    config = config or VideoFeatureConfig()
    keyframes, images = read_keyframes(path, config.keyframes)
    return keyframes, [sift_descriptors(image, config.sift) for image in images]


def extract_video(
    path: str | os.PathLike[str],
    config: VideoFeatureConfig | None = None,
    *,
    codebook: Codebook | None = None,
) -> VideoFeatures:
    """The vector of one video file.

    Args:
      path: the video.
      config: defaults to `VideoFeatureConfig()` (mean pooling, [128]).
      codebook: required for "vlad" and "bow" pooling.

    Raises:
      VideoError: the file cannot be opened, has no decodable frame, or is truncated.
    """
    config = config or VideoFeatureConfig()
    _check_codebook(config, codebook)
    keyframes, descriptors = video_descriptors(path, config)
    return VideoFeatures(
        vector=pool_descriptors(descriptors, config.pooling, codebook),
        keyframes=keyframes,
        num_descriptors=sum(len(d) for d in descriptors),
    )


def learn_codebook(
    paths: Sequence[str | os.PathLike[str]],
    *,
    config: VideoFeatureConfig | None = None,
    size: int = 64,
    seed: int = 0,
    max_descriptors: int = 100_000,
    iterations: int = 25,
) -> Codebook:
    """Learns a codebook from the keyframe descriptors of some videos.

    Videos that cannot be read are logged and skipped. When the videos give more than
    `max_descriptors` descriptors, a seeded random subset of that size is clustered.

    Args:
      paths: the videos, e.g. a sample of the catalogue.
      config: descriptor extraction (its `sift.root_sift` is recorded in the codebook).
      size: K, the number of centres.
      seed: seeds the subset and k-means.
      max_descriptors: the most descriptors clustered.
      iterations: Lloyd steps at most.
    """
    config = config or VideoFeatureConfig()
    chunks = []
    for p in paths:
        try:
            chunks.extend(video_descriptors(p, config)[1])
        except VideoError as e:
            logger.warning("codebook: skipping %s", e)
    x = np.concatenate(chunks) if chunks else np.zeros((0, DESCRIPTOR_DIM), np.float32)
    if x.shape[0] > max_descriptors:
        rows = np.sort(np.random.default_rng(seed).choice(x.shape[0], max_descriptors, False))
        x = x[rows]
    return fit_codebook(x, size, root_sift=config.sift.root_sift, seed=seed, iterations=iterations)


# -- vector files ------------------------------------------------------------------------------


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


def read_vectors(path: str | os.PathLike[str]) -> VideoVectors:
    """Reads a vector file written by `save_vectors` (allow_pickle=False).

    Only "ids" and "vectors" are required, so any .npz with those two works.

    Raises:
      DataError: a missing or malformed file, naming it.
    """
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot read a vector file ({e})") from None
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


# -- folders -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ExtractionReport:
    """What `extract_folder` did (also written as JSON beside the vector file).

    Attributes:
      out_path: the vector file.
      report_path: the JSON report.
      found: video files that matched the pattern.
      processed: ids extracted in this run, sorted.
      skipped: videos already in the vector file from an earlier run, not extracted again.
      failed: (file, reason) of each video that could not be used; they are not in the vector
        file and are tried again by the next run.
      no_keypoints: ids (of this run) whose vector is zero because SIFT found nothing.
      seconds: wall-clock time of the run.
    """

    out_path: Path
    report_path: Path
    found: int
    processed: list[str]
    skipped: int
    failed: list[tuple[str, str]]
    no_keypoints: list[str]
    seconds: float


def report_path_for(out_npz: str | os.PathLike[str]) -> Path:
    """The JSON report beside a vector file: vectors.npz -> vectors.report.json."""
    out = Path(out_npz)
    return out.with_name(f"{out.stem}.report.json")


def _list_videos(
    folder: Path, pattern: str | Sequence[str]
) -> tuple[list[Path], list[tuple[str, str]]]:
    """(videos with distinct ids, (file, reason) of the duplicates), both sorted by name."""
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    patterns = [p.lower() for p in patterns]
    videos: dict[str, Path] = {}
    duplicates = []
    for p in sorted(folder.iterdir()):
        # Dot files are hidden or metadata (macOS "._clip.mp4" resource forks), never videos.
        if p.name.startswith(".") or not p.is_file():
            continue
        if not any(fnmatch.fnmatchcase(p.name.lower(), pat) for pat in patterns):
            continue
        if p.stem in videos:
            duplicates.append((str(p), f"duplicate video id {p.stem!r}: {videos[p.stem].name}"))
        else:
            videos[p.stem] = p
    return list(videos.values()), duplicates


# State of an extraction worker process, set once by `_init_worker`.
_WORKER: dict[str, Any] = {}


def _init_worker(config: VideoFeatureConfig, codebook: Codebook | None) -> None:
    # Processes are the parallelism; one OpenCV thread each keeps the cores from being
    # oversubscribed.
    _cv2().setNumThreads(1)
    _WORKER.update(config=config, codebook=codebook)


def _extract_or_reason(
    path: Path, config: VideoFeatureConfig, codebook: Codebook | None
) -> VideoFeatures | str:
    """The features of a video, or why it cannot be used."""
    try:
        return extract_video(path, config, codebook=codebook)
    except VideoError as e:
        return e.reason
    except Exception as e:  # One bad file must never stop a batch.
        return f"{type(e).__name__}: {e}"


def _worker_extract(path: Path) -> VideoFeatures | str:
    return _extract_or_reason(path, _WORKER["config"], _WORKER["codebook"])


def _extract_many(
    paths: Sequence[Path], config: VideoFeatureConfig, codebook: Codebook | None, workers: int
) -> Iterator[tuple[Path, VideoFeatures | str]]:
    """(path, features or failure reason) for each path, in completion order.

    With workers > 1, a pool of spawned processes: spawn, not fork, because forking a process
    that runs threads (OpenCV's, or JAX's when a trainer calls this) can deadlock the child.
    At most 2 * workers videos are in flight, so an interrupted run loses little work. A
    worker that dies (a decoder crash) fails the videos in flight and the pool is restarted.
    """
    if workers == 1:
        for p in paths:
            yield p, _extract_or_reason(p, config, codebook)
        return
    pending = deque(paths)
    context = multiprocessing.get_context("spawn")
    # Pools in a row that broke before finishing any video: the second means the workers
    # cannot run at all (e.g. they cannot import the caller's __main__), not a bad file.
    barren = 0
    while pending:
        pool = concurrent.futures.ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init_worker, initargs=(config, codebook)
        )
        in_flight: dict[concurrent.futures.Future, Path] = {}
        finished = 0
        try:
            broken: BaseException | None = None
            while (pending and broken is None) or in_flight:
                while pending and broken is None and len(in_flight) < 2 * workers:
                    p = pending.popleft()
                    in_flight[pool.submit(_worker_extract, p)] = p
                done, _ = concurrent.futures.wait(
                    in_flight, return_when=concurrent.futures.FIRST_COMPLETED
                )
                for fut in sorted(done, key=lambda f: str(in_flight[f])):
                    p = in_flight.pop(fut)
                    try:
                        result = fut.result()
                    except concurrent.futures.process.BrokenProcessPool as e:
                        broken = e
                        result = "a worker process died while this video was being decoded"
                    else:
                        finished += 1
                    yield p, result
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        barren = barren + 1 if broken is not None and finished == 0 else 0
        if barren == 2:
            raise RuntimeError(
                f"extraction worker processes die before finishing any video ({broken}); "
                "a script that calls extract_folder(workers > 1) needs an "
                "`if __name__ == '__main__':` guard"
            ) from broken


def extract_folder(
    folder: str | os.PathLike[str],
    out_npz: str | os.PathLike[str],
    *,
    config: VideoFeatureConfig | None = None,
    workers: int = 1,
    pattern: str | Sequence[str] = VIDEO_PATTERNS,
    codebook: Codebook | None = None,
    checkpoint_every: int = 100,
    progress: bool = True,
) -> ExtractionReport:
    """Extracts the vector of every video in a folder into one vector file.

    Resumable: videos whose id is already in `out_npz` are skipped, and the file is rewritten
    (atomically) every `checkpoint_every` new videos and when the run ends or is interrupted,
    so a killed run keeps nearly all finished work. A video that cannot be read is reported,
    not fatal; it is tried again by the next run. The report is written to
    `report_path_for(out_npz)`.

    Args:
      folder: the videos (not searched recursively); the id of a video is its file stem.
      out_npz: the vector file, read first if it exists (see `save_vectors` for its layout).
      config: defaults to `VideoFeatureConfig()`; must equal the one `out_npz` was made with.
      workers: processes (1: in this process).
      pattern: glob pattern(s) of the file names to use, matched case-insensitively.
      codebook: required for "vlad" and "bow" pooling; must be the one `out_npz` was made with.
      checkpoint_every: rewrite `out_npz` after this many new videos.
      progress: show a tqdm progress bar.

    Raises:
      FileNotFoundError: `folder` is not a directory.
      ValueError: `out_npz` exists but was made with another configuration or codebook.
    """
    start = time.perf_counter()
    config = config or VideoFeatureConfig()
    folder, out = Path(folder), Path(out_npz)
    if not folder.is_dir():
        raise FileNotFoundError(f"video folder {folder} is not a directory")
    if workers < 1 or checkpoint_every < 1:
        raise ValueError(
            f"need workers >= 1 and checkpoint_every >= 1, got {workers}, {checkpoint_every}"
        )
    _check_codebook(config, codebook)
    meta = {
        "config": config.to_dict(),
        "codebook_sha256": codebook.sha256() if codebook is not None else "",
    }
    rows: dict[str, tuple[np.ndarray, int, int]] = {}
    if out.exists():
        stored = read_vectors(out)
        made_with = {k: stored.meta.get(k) for k in meta}
        if made_with != meta:
            raise ValueError(
                f"{out} was made with {made_with}, not {meta}; write to another file or delete it"
            )
        rows = {
            i: (v, int(k), int(d))
            for i, v, k, d in zip(
                stored.ids.tolist(),
                stored.vectors,
                stored.num_keyframes,
                stored.num_descriptors,
                strict=True,
            )
        }
    videos, duplicates = _list_videos(folder, pattern)
    failed = list(duplicates)
    todo = [p for p in videos if p.stem not in rows]
    processed: list[str] = []
    no_keypoints: list[str] = []
    unsaved = 0

    def save() -> None:
        ids = list(rows)
        dim = pooled_dim(config.pooling, codebook)
        vectors = np.stack([rows[i][0] for i in ids]) if ids else np.zeros((0, dim), np.float32)
        save_vectors(
            out,
            ids,
            vectors,
            num_keyframes=np.array([rows[i][1] for i in ids], dtype=np.int32),
            num_descriptors=np.array([rows[i][2] for i in ids], dtype=np.int32),
            meta=meta,
        )

    bar = tqdm(total=len(todo), unit="video", desc="SIFT vectors", disable=not progress)
    complete = False
    try:
        for path, result in _extract_many(todo, config, codebook, workers):
            bar.update()
            if isinstance(result, str):
                failed.append((str(path), result))
                continue
            rows[path.stem] = (result.vector, len(result.keyframes.indices), result.num_descriptors)
            processed.append(path.stem)
            if result.no_keypoints:
                no_keypoints.append(path.stem)
            unsaved += 1
            if unsaved >= checkpoint_every:
                save()
                unsaved = 0
        complete = True
    finally:
        bar.close()
        if unsaved or not out.exists():
            save()
        report = ExtractionReport(
            out_path=out,
            report_path=report_path_for(out),
            found=len(videos) + len(duplicates),
            processed=sorted(processed),
            skipped=len(videos) - len(todo),
            failed=sorted(failed),
            no_keypoints=sorted(no_keypoints),
            seconds=time.perf_counter() - start,
        )
        _write_report(report, meta, complete)
    return report


def _write_report(report: ExtractionReport, meta: Mapping[str, Any], complete: bool) -> None:
    body = {
        "vectors": str(report.out_path),
        "complete": complete,
        "found": report.found,
        "processed": report.processed,
        "skipped_existing": report.skipped,
        "failed": [{"file": f, "reason": r} for f, r in report.failed],
        "no_keypoints": report.no_keypoints,
        "seconds": round(report.seconds, 3),
        **meta,
    }
    write_atomic(report.report_path, (json.dumps(body, indent=1) + "\n").encode())


# -- synthetic videos --------------------------------------------------------------------------


_TEXTURES = ("blobs", "grating", "checker", "dots")


def _synthetic_texture(rng: np.random.Generator, kind: str, shape: tuple[int, int]) -> np.ndarray:
    """A random colour texture of one of the `_TEXTURES` families: [H, W, 3] uint8."""
    cv2 = _cv2()
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    c0, c1 = (rng.integers(0, 256, size=3).astype(np.float64) for _ in range(2))
    if kind == "blobs":
        cell = int(rng.integers(4, 16))
        small = rng.random((max(2, h // cell), max(2, w // cell), 3)) * 255.0
        image = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    elif kind == "grating":
        angle, freq = rng.uniform(0, np.pi), rng.uniform(0.15, 0.8)
        wave = 0.5 + 0.5 * np.sin(freq * (np.cos(angle) * xx + np.sin(angle) * yy))
        image = c0 + (c1 - c0) * wave[..., None]
    elif kind == "checker":
        cell = int(rng.integers(3, 12))
        on = ((xx // cell + yy // cell) % 2)[..., None]
        image = c0 + (c1 - c0) * on
    else:
        image = np.broadcast_to(c0, (h, w, 3)).copy()
        for _ in range(h * w // 40):
            centre = (int(rng.integers(w)), int(rng.integers(h)))
            colour = rng.integers(0, 256, size=3).tolist()
            cv2.circle(image, centre, int(rng.integers(1, 4)), colour, -1)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_synthetic_video(
    path: str | os.PathLike[str],
    *,
    seed: int,
    shots: int = 3,
    frames_per_shot: int = 10,
    size: tuple[int, int] = (96, 64),
    fps: float = 10.0,
    fourcc: str = "MJPG",
) -> list[int]:
    """Writes a small video of textured scenes with moving shapes, for tests and benchmarks.

    Each shot has its own random texture (colour blobs, a grating, a checkerboard or dots, at
    a random scale) panning slowly, and three coloured shapes moving across it; consecutive
    shots differ completely, so each shot start is a cut. The same arguments give the same
    video.

    Args:
      path: the file to write (".avi" for MJPG, ".mp4" for "mp4v").
      seed: seeds the scenes.
      shots, frames_per_shot: the video has shots * frames_per_shot frames.
      size: (width, height) in pixels.
      fps: frames per second written in the container.
      fourcc: the codec's four-character code.

    Returns:
      The frame numbers of the cuts: [frames_per_shot, 2 * frames_per_shot, ...].
    """
    cv2 = _cv2()
    w, h = size
    rng = np.random.default_rng(seed)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {fourcc} video to {path}")
    # The texture is larger than the frame by the pan distance: frame t shows it shifted by t.
    shape = (h + frames_per_shot, w + frames_per_shot)
    try:
        for _ in range(shots):
            texture = _synthetic_texture(rng, _TEXTURES[rng.integers(len(_TEXTURES))], shape)
            shapes = [
                (
                    rng.integers(2),  # 0: circle, 1: square
                    rng.uniform([0, 0], [w, h]),  # start centre
                    rng.uniform(-3, 3, size=2),  # velocity, pixels per frame
                    int(rng.integers(4, max(5, h // 5))),  # radius
                    tuple(int(c) for c in rng.integers(0, 256, size=3)),
                )
                for _ in range(3)
            ]
            for t in range(frames_per_shot):
                frame = np.ascontiguousarray(texture[t : t + h, t : t + w])
                for kind, centre, velocity, r, colour in shapes:
                    cx, cy = (centre + t * velocity).astype(int).tolist()
                    if kind == 0:
                        cv2.circle(frame, (cx, cy), r, colour, -1)
                    else:
                        cv2.rectangle(frame, (cx - r, cy - r), (cx + r, cy + r), colour, -1)
                writer.write(frame)
    finally:
        writer.release()
    return [s * frames_per_shot for s in range(1, shots)]


# -- command line ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m shortrec_jax.features.video --videos=DIR --out=vectors.npz [--workers=2]`."""
    parser = argparse.ArgumentParser(
        prog="python -m shortrec_jax.features.video",
        description="SIFT keyframe vectors of every video in a folder, into one .npz.",
    )
    parser.add_argument("--videos", required=True, help="folder of video files")
    parser.add_argument("--out", required=True, help="vector file (.npz) to write or resume")
    parser.add_argument("--workers", type=int, default=1, help="processes")
    parser.add_argument("--pattern", action="append", help="file name pattern (repeatable)")
    kf, sift = KeyframeConfig(), SiftConfig()
    parser.add_argument("--max-keyframes", type=int, default=kf.max_keyframes)
    parser.add_argument("--cut-threshold", type=float, default=kf.cut_threshold)
    parser.add_argument("--frame-width", type=int, default=kf.frame_width)
    parser.add_argument("--nfeatures", type=int, default=sift.nfeatures)
    parser.add_argument("--root-sift", action="store_true", help="RootSIFT descriptors")
    parser.add_argument("--pooling", choices=POOLINGS, default="mean")
    parser.add_argument(
        "--codebook", help="codebook .npz for vlad/bow pooling; learned from --videos if absent"
    )
    parser.add_argument("--codebook-size", type=int, default=64, help="K when learning one")
    parser.add_argument(
        "--codebook-videos", type=int, default=200, help="videos sampled to learn a codebook"
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds codebook learning")
    parser.add_argument("--checkpoint-every", type=int, default=100)
    args = parser.parse_args(argv)
    # The report names every unreadable file and why, so FFmpeg's and OpenCV's own messages
    # would only garble the progress bar. Read when OpenCV is first imported (here and in the
    # spawned workers, which inherit the environment); a value already set wins.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

    config = VideoFeatureConfig(
        keyframes=dataclasses.replace(
            kf,
            max_keyframes=args.max_keyframes,
            min_keyframes=min(kf.min_keyframes, args.max_keyframes),
            cut_threshold=args.cut_threshold,
            frame_width=args.frame_width,
        ),
        sift=dataclasses.replace(sift, nfeatures=args.nfeatures, root_sift=args.root_sift),
        pooling=args.pooling,
    )
    pattern = args.pattern or VIDEO_PATTERNS
    codebook = None
    if args.pooling != "mean":
        if not args.codebook:
            parser.error(f"--pooling={args.pooling} needs --codebook")
        if Path(args.codebook).exists():
            codebook = Codebook.load(args.codebook)
        else:
            videos, _ = _list_videos(Path(args.videos), pattern)
            step = max(1, len(videos) // max(1, args.codebook_videos))
            sample = videos[::step][: args.codebook_videos]
            print(f"learning a {args.codebook_size}-centre codebook from {len(sample)} videos")
            codebook = learn_codebook(
                sample, config=config, size=args.codebook_size, seed=args.seed
            )
            codebook.save(args.codebook)
    report = extract_folder(
        args.videos,
        args.out,
        config=config,
        workers=args.workers,
        pattern=pattern,
        codebook=codebook,
        checkpoint_every=args.checkpoint_every,
    )
    print(
        f"{report.out_path}: {len(report.processed)} extracted, {report.skipped} already there, "
        f"{len(report.failed)} failed, {len(report.no_keypoints)} without keypoints "
        f"({report.seconds:.1f} s); report: {report.report_path}"
    )
    for file, reason in report.failed:
        print(f"  failed: {file}: {reason}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
