"""Keyframes of a video: frames at the strongest shot boundaries, filled up uniformly.

One pass over the decoded frames. A frame starts a new shot when the mean absolute difference
of its small grayscale thumbnail from the previous frame's exceeds
`KeyframeConfig.cut_threshold`; the first frame of the video and of the strongest shots are
the keyframes (at most `max_keyframes`). A video with fewer shots than `min_keyframes` (one
long take, slow fades) is filled up with uniformly spaced frames.
"""

from __future__ import annotations

import heapq
import os

import numpy as np

from shortrec_jax.features.video.config import KeyframeConfig, Keyframes, VideoError, import_cv2


class _KeyframeSelector:
    """Chooses keyframes in one pass with memory for about 3 * max_keyframes frames.

    The strongest cuts live in a min-heap of size max_keyframes - 1. The uniform fallback needs
    frames spread over a video of unknown length (containers may misreport it), so it keeps
    the frames whose number is a multiple of a stride, and doubles the stride (dropping every
    other kept frame) whenever more than 2 * max_keyframes are kept.
    """

    def __init__(self, config: KeyframeConfig) -> None:
        self.config = config
        self._cv = import_cv2()
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
    cv2 = import_cv2()
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
