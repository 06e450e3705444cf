"""Synthetic videos with known shots, for tests and benchmarks (no real footage needed)."""

from __future__ import annotations

import os

import numpy as np

from shortrec_jax.features.video.config import import_cv2

_TEXTURES = ("blobs", "grating", "checker", "dots")


def _synthetic_texture(rng: np.random.Generator, kind: str, shape: tuple[int, int]) -> np.ndarray:
    """A random colour texture of one of the `_TEXTURES` families: [H, W, 3] uint8."""
    cv2 = import_cv2()
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
    cv2 = import_cv2()
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
