"""Configuration and results of video feature extraction, and OpenCV, imported on first use.

OpenCV is the optional extra `video`; `import_cv2` raises an ImportError that says how to
install it, so that importing the package without it works and only extraction fails.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import numpy as np

DESCRIPTOR_DIM = 128
DESCRIPTOR_POOLINGS = ("mean", "vlad", "bow")


_INSTALL_HINT = 'pip install "shortrec-jax[video]"'


def import_cv2() -> ModuleType:
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
        if self.pooling not in DESCRIPTOR_POOLINGS:
            raise ValueError(f"pooling {self.pooling!r} is not one of {DESCRIPTOR_POOLINGS}")

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
