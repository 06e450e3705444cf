"""Every video of a folder into one vector file, in several processes, resumably, with a
JSON report of the videos that could not be used.

A video in which SIFT finds no keypoint at all (a black screen, a flat colour) gets the zero
vector and `num_descriptors == 0`, so it is kept (its id maps to "no content signal", the
same as an item without a video) and listed under "no_keypoints" in the report.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import fnmatch
import json
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from shortrec_jax.features.video.codebook import Codebook
from shortrec_jax.features.video.config import (
    VideoError,
    VideoFeatureConfig,
    VideoFeatures,
    import_cv2,
)
from shortrec_jax.features.video.sift import check_codebook, extract_video, pooled_dim
from shortrec_jax.features.video.vectors import read_vectors, save_vectors
from shortrec_jax.io import write_atomic

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


def list_videos(
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
    import_cv2().setNumThreads(1)
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
    check_codebook(config, codebook)
    meta = {
        "config": config.to_dict(),
        "codebook_sha256": codebook.sha256() if codebook is not None else "",
    }
    rows = _stored_rows(out, meta)
    videos, duplicates = list_videos(folder, pattern)
    failed = list(duplicates)
    todo = [p for p in videos if p.stem not in rows]
    processed: list[str] = []
    no_keypoints: list[str] = []
    unsaved = 0

    def save() -> None:
        _save_rows(out, rows, pooled_dim(config.pooling, codebook), meta)

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


# The rows of a vector file by id: (vector [D], number of keyframes, number of descriptors).
_Rows = dict[str, tuple[np.ndarray, int, int]]


def _stored_rows(out: Path, meta: Mapping[str, Any]) -> _Rows:
    """The rows already in the vector file `out` (none if it does not exist), which must have
    been made with the same `meta` (configuration and codebook)."""
    if not out.exists():
        return {}
    stored = read_vectors(out)
    made_with = {k: stored.meta.get(k) for k in meta}
    if made_with != meta:
        raise ValueError(
            f"{out} was made with {made_with}, not {meta}; write to another file or delete it"
        )
    return {
        i: (v, int(k), int(d))
        for i, v, k, d in zip(
            stored.ids.tolist(),
            stored.vectors,
            stored.num_keyframes,
            stored.num_descriptors,
            strict=True,
        )
    }


def _save_rows(out: Path, rows: _Rows, dim: int, meta: Mapping[str, Any]) -> None:
    """Writes all `rows` (vectors of length `dim`) to the vector file `out`."""
    ids = list(rows)
    vectors = np.stack([rows[i][0] for i in ids]) if ids else np.zeros((0, dim), np.float32)
    save_vectors(
        out,
        ids,
        vectors,
        num_keyframes=np.array([rows[i][1] for i in ids], dtype=np.int32),
        num_descriptors=np.array([rows[i][2] for i in ids], dtype=np.int32),
        meta=meta,
    )


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
