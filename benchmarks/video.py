"""Throughput of SIFT keyframe extraction (`shortrec_jax.features.video`) on this machine.

  python -m benchmarks.video [--videos=32] [--width=320] [--height=180] [--shots=4]
                             [--frames-per-shot=15] [--workers=1,2]

Writes `--videos` synthetic MJPG videos (textured scenes with moving shapes, a scene cut every
`--frames-per-shot` frames) to a temporary folder, then runs `extract_folder` with the default
configuration once per worker count, each into a fresh vector file. Times are wall clock of
the whole call, process start-up of the workers included; keyframes/s counts the keyframes
the vectors were computed from. The work is decoding, resizing and SIFT on the CPU. With one
worker the extraction runs in this process, where OpenCV may spread SIFT and resizing over all
cores by itself; each worker process uses one OpenCV thread, so the two rows compare OpenCV's
threads with process parallelism, not one core with two.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import git_commit, print_table
from shortrec_jax.features.video.extractor import extract_folder
from shortrec_jax.features.video.synthetic import write_synthetic_video
from shortrec_jax.features.video.vectors import read_vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=32, help="synthetic videos to extract")
    parser.add_argument("--width", type=int, default=320, help="frame width in pixels")
    parser.add_argument("--height", type=int, default=180, help="frame height in pixels")
    parser.add_argument("--shots", type=int, default=4, help="scenes per video")
    parser.add_argument("--frames-per-shot", type=int, default=15, help="frames per scene")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "videos"
        folder.mkdir()
        for s in range(args.videos):
            write_synthetic_video(
                folder / f"clip{s:04d}.avi",
                seed=s,
                shots=args.shots,
                frames_per_shot=args.frames_per_shot,
                size=(args.width, args.height),
                fps=30.0,
            )
        rows = []
        for workers in (int(w) for w in args.workers.split(",")):
            out = Path(tmp) / f"vectors_{workers}.npz"
            report = extract_folder(folder, out, workers=workers, progress=False)
            if report.failed:
                raise RuntimeError(f"extraction failed: {report.failed}")
            keyframes = int(np.sum(read_vectors(out).num_keyframes))
            rows.append(
                {
                    "workers": workers,
                    "videos": len(report.processed),
                    "seconds": report.seconds,
                    "videos/s": len(report.processed) / report.seconds,
                    "keyframes/s": keyframes / report.seconds,
                    "frames/s": len(report.processed)
                    * args.shots
                    * args.frames_per_shot
                    / report.seconds,
                }
            )
    print_table(
        f"SIFT keyframe vectors: {args.videos} videos of {args.shots} x {args.frames_per_shot} "
        f"frames at {args.width} x {args.height} (MJPG), default VideoFeatureConfig; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"commit {git_commit()}",
        rows,
        ["workers", "videos", "seconds", "videos/s", "keyframes/s", "frames/s"],
    )


if __name__ == "__main__":
    main()
