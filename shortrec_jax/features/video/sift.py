"""SIFT descriptors of keyframes, pooled into one vector per video.

Descriptors: OpenCV SIFT on each keyframe, resized to a fixed width so that copies of a video
at different resolutions give comparable keypoints; optionally RootSIFT (Arandjelovic &
Zisserman, CVPR 2012). Pooling: "mean" (the study): the mean descriptor of each keyframe,
averaged over keyframes and L2-normalised, a [128] vector. "vlad" ([K * 128]) and "bow" ([K])
encode descriptors against a k-means `Codebook` learned from a set of videos.

Same file, same configuration, same OpenCV build -> bitwise the same vector: decoding and SIFT
are deterministic (OpenCV sorts keypoints before it keeps the strongest), and pooling sums in
float64 in a fixed order.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from shortrec_jax.features.video.codebook import Codebook, fit_codebook
from shortrec_jax.features.video.config import (
    DESCRIPTOR_DIM,
    DESCRIPTOR_POOLINGS,
    Keyframes,
    SiftConfig,
    VideoError,
    VideoFeatureConfig,
    VideoFeatures,
    import_cv2,
)
from shortrec_jax.features.video.keyframes import read_keyframes

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=4)
def _sift(config: SiftConfig) -> Any:
    """One SIFT detector per configuration and process (creating one allocates buffers)."""
    return import_cv2().SIFT_create(
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
    if pooling not in DESCRIPTOR_POOLINGS:
        raise ValueError(f"pooling {pooling!r} is not one of {DESCRIPTOR_POOLINGS}")
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


def check_codebook(config: VideoFeatureConfig, codebook: Codebook | None) -> None:
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
    check_codebook(config, codebook)
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
