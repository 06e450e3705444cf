"""`python -m shortrec_jax.features.video --videos=DIR --out=vectors.npz [--workers=2]`."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from shortrec_jax.features.video.codebook import Codebook
from shortrec_jax.features.video.config import (
    DESCRIPTOR_POOLINGS,
    KeyframeConfig,
    SiftConfig,
    VideoFeatureConfig,
)
from shortrec_jax.features.video.extractor import VIDEO_PATTERNS, extract_folder, list_videos
from shortrec_jax.features.video.sift import learn_codebook


def _parser() -> argparse.ArgumentParser:
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
    parser.add_argument("--pooling", choices=DESCRIPTOR_POOLINGS, default="mean")
    parser.add_argument(
        "--codebook", help="codebook .npz for vlad/bow pooling; learned from --videos if absent"
    )
    parser.add_argument("--codebook-size", type=int, default=64, help="K when learning one")
    parser.add_argument(
        "--codebook-videos", type=int, default=200, help="videos sampled to learn a codebook"
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds codebook learning")
    parser.add_argument("--checkpoint-every", type=int, default=100)
    return parser


def _config(args: argparse.Namespace) -> VideoFeatureConfig:
    kf, sift = KeyframeConfig(), SiftConfig()
    return VideoFeatureConfig(
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


def _codebook(
    args: argparse.Namespace, config: VideoFeatureConfig, pattern: Sequence[str]
) -> Codebook:
    """The codebook file `--codebook`, learned from a sample of `--videos` if it is absent."""
    if Path(args.codebook).exists():
        return Codebook.load(args.codebook)
    videos, _ = list_videos(Path(args.videos), pattern)
    step = max(1, len(videos) // max(1, args.codebook_videos))
    sample = videos[::step][: args.codebook_videos]
    print(f"learning a {args.codebook_size}-centre codebook from {len(sample)} videos")
    codebook = learn_codebook(sample, config=config, size=args.codebook_size, seed=args.seed)
    codebook.save(args.codebook)
    return codebook


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m shortrec_jax.features.video --videos=DIR --out=vectors.npz [--workers=2]`."""
    parser = _parser()
    args = parser.parse_args(argv)
    # The report names every unreadable file and why, so FFmpeg's and OpenCV's own messages
    # would only garble the progress bar. Read when OpenCV is first imported (here and in the
    # spawned workers, which inherit the environment); a value already set wins.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

    config = _config(args)
    pattern = args.pattern or VIDEO_PATTERNS
    codebook = None
    if args.pooling != "mean":
        if not args.codebook:
            parser.error(f"--pooling={args.pooling} needs --codebook")
        codebook = _codebook(args, config, pattern)
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
