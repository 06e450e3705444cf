"""SIFT keyframe vectors on small videos written here with OpenCV (96 x 64 px, 30 frames)."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import subprocess
import sys

import numpy as np
import pytest

from shortrec_jax.data.dataset import DataError, Dataset
from shortrec_jax.data.features import FeatureEncoder
from shortrec_jax.data.fields import FieldSpec
from shortrec_jax.features.video import extractor
from shortrec_jax.features.video.cli import main
from shortrec_jax.features.video.codebook import Codebook
from shortrec_jax.features.video.config import KeyframeConfig, SiftConfig, VideoFeatureConfig
from shortrec_jax.features.video.extractor import extract_folder, report_path_for
from shortrec_jax.features.video.keyframes import read_keyframes
from shortrec_jax.features.video.sift import extract_video, learn_codebook
from shortrec_jax.features.video.synthetic import write_synthetic_video
from shortrec_jax.features.video.vectors import load_item_vectors, read_vectors, save_vectors

cv2 = pytest.importorskip("cv2")

# Three shots of 10 frames each: cuts at frames 10 and 20.
SHOTS, FRAMES_PER_SHOT = 3, 10
# The test videos are tiny, so keyframes are compared at 64 px (the smallest copy's width)
# rather than the default 320: see KeyframeConfig.frame_width.
SMALL = VideoFeatureConfig(keyframes=KeyframeConfig(frame_width=64))


def _write(path, seed, **kwargs):
    kwargs = {"shots": SHOTS, "frames_per_shot": FRAMES_PER_SHOT, **kwargs}
    return write_synthetic_video(path, seed=seed, **kwargs)


def _transcode(src, dst, size, fourcc):
    """Copies a video at another size and/or with another codec."""
    cap = cv2.VideoCapture(str(src))
    out = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*fourcc), 10.0, size)
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        out.write(cv2.resize(frame, size, interpolation=cv2.INTER_AREA))
    out.release()
    cap.release()


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Five different videos, plus copies of the first one: smaller, larger, re-encoded."""
    d = tmp_path_factory.mktemp("clips")
    paths = {f"v{s}": d / f"v{s}.avi" for s in range(5)}
    for s, p in enumerate(paths.values()):
        _write(p, seed=s)
    copies = {
        "small": (d / "v0_small.avi", (64, 43), "MJPG"),
        "large": (d / "v0_large.avi", (144, 96), "MJPG"),
        "mp4v": (d / "v0_mp4v.mp4", (96, 64), "mp4v"),
    }
    for name, (p, size, fourcc) in copies.items():
        _transcode(paths["v0"], p, size, fourcc)
        paths[name] = p
    return paths


def _folder(tmp_path, clips, names):
    d = tmp_path / "videos"
    d.mkdir(exist_ok=True)
    for n in names:
        shutil.copy(clips[n], d / clips[n].name)
    return d


def _processed(out):
    return json.loads(report_path_for(out).read_text())["processed"]


def test_vector_is_128_d_unit_norm_and_bitwise_deterministic(clips, tmp_path):
    first = extract_video(clips["v1"])  # the default configuration
    assert first.vector.shape == (128,) and first.vector.dtype == np.float32
    assert np.linalg.norm(first.vector) == pytest.approx(1.0, abs=1e-6)
    assert first.num_descriptors > 0 and not first.no_keypoints
    # The same bytes under another name, read again: bitwise the same vector.
    again = tmp_path / "again.avi"
    shutil.copy(clips["v1"], again)
    np.testing.assert_array_equal(extract_video(again).vector, first.vector)


def test_keyframes_are_the_first_frame_and_the_shot_cuts(tmp_path):
    path = tmp_path / "four_shots.avi"
    cuts = _write(path, seed=7, shots=4, frames_per_shot=8)
    assert cuts == [8, 16, 24]
    keyframes, images = read_keyframes(path)
    assert keyframes.cuts.tolist() == cuts
    assert keyframes.indices.tolist() == [0, *cuts]
    assert keyframes.method == "shots" and keyframes.num_frames == 32
    # Grayscale at frame_width, the height from the 96 x 64 aspect ratio.
    assert [im.shape for im in images] == [(213, 320)] * 4
    assert all(im.dtype == np.uint8 for im in images)

    # At most max_keyframes: the first frame and the strongest cuts (all three are detected).
    few = KeyframeConfig(max_keyframes=3, min_keyframes=1)
    keyframes, images = read_keyframes(path, few)
    assert keyframes.cuts.tolist() == cuts
    assert len(images) == 3 and keyframes.indices[0] == 0
    assert set(keyframes.indices[1:].tolist()) < set(cuts)
    with pytest.raises(ValueError, match="min_keyframes <= max_keyframes"):
        KeyframeConfig(max_keyframes=2)


def test_one_shot_video_falls_back_to_uniform_keyframes(tmp_path):
    path = tmp_path / "one_shot.avi"
    _write(path, seed=3, shots=1, frames_per_shot=30)
    keyframes, _ = read_keyframes(path)
    assert keyframes.cuts.size == 0 and keyframes.method == "uniform"
    # min_keyframes = 4 targets at frames 0, 9.7, 19.3 and 29; with 30 frames the selector
    # keeps every second frame for the fallback, so the nearest are 10, 20 and 28.
    assert keyframes.indices.tolist() == [0, 10, 20, 28]
    # Too few cuts: the shot starts are kept and the rest filled in between.
    two_shots = tmp_path / "two_shots.avi"
    _write(two_shots, seed=4, shots=2, frames_per_shot=15)
    keyframes, _ = read_keyframes(two_shots)
    assert keyframes.method == "shots+uniform" and keyframes.cuts.tolist() == [15]
    assert {0, 15} < set(keyframes.indices.tolist()) and keyframes.indices.size == 4


def test_copies_are_closer_than_other_videos(clips):
    vec = {name: extract_video(p, SMALL).vector for name, p in clips.items()}
    others = [float(vec["v0"] @ vec[f"v{s}"]) for s in range(1, 5)]
    for copy in ("small", "large", "mp4v"):
        assert float(vec["v0"] @ vec[copy]) > max(others), copy


def test_flat_video_has_no_keypoints_and_the_zero_vector(tmp_path):
    path = tmp_path / "flat.avi"
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (96, 64))
    for _ in range(12):
        out.write(np.full((64, 96, 3), 90, np.uint8))
    out.release()
    features = extract_video(path)
    assert features.no_keypoints and features.num_descriptors == 0
    np.testing.assert_array_equal(features.vector, np.zeros(128, np.float32))


def test_extract_folder_reports_bad_files_and_resumes(clips, tmp_path):
    folder = _folder(tmp_path, clips, ["v0", "v1", "v2"])
    data = clips["v3"].read_bytes()
    (folder / "cut.avi").write_bytes(data[: len(data) // 2])  # a truncated download
    (folder / "notes.mp4").write_text("not a video\n" * 20)
    (folder / "readme.txt").write_text("not matched by the video patterns")
    out = tmp_path / "out" / "vectors.npz"

    report = extract_folder(folder, out, config=SMALL, progress=False)
    assert report.found == 5 and report.skipped == 0
    assert report.processed == ["v0", "v1", "v2"]
    failed = dict(report.failed)
    assert set(failed) == {str(folder / "cut.avi"), str(folder / "notes.mp4")}
    assert failed[str(folder / "cut.avi")].startswith("truncated: decoded")
    assert failed[str(folder / "notes.mp4")].startswith("cannot be opened")

    with np.load(out, allow_pickle=False) as npz:
        assert npz["ids"].tolist() == ["v0", "v1", "v2"]
        assert npz["vectors"].shape == (3, 128) and npz["vectors"].dtype == np.float32
        np.testing.assert_array_equal(
            npz["vectors"][1], extract_video(folder / "v1.avi", SMALL).vector
        )
    on_disk = json.loads(report.report_path.read_text())
    assert {f["file"] for f in on_disk["failed"]} == set(failed)
    assert on_disk["complete"] and on_disk["config"] == SMALL.to_dict()
    assert VideoFeatureConfig.from_dict(read_vectors(out).meta["config"]) == SMALL

    # A second run extracts only the new video; the bad files are tried (and fail) again.
    shutil.copy(clips["v4"], folder / "v4.avi")
    report = extract_folder(folder, out, config=SMALL, progress=False)
    assert report.processed == ["v4"] and report.skipped == 3 and len(report.failed) == 2
    assert read_vectors(out).ids.tolist() == ["v0", "v1", "v2", "v4"]

    with pytest.raises(ValueError, match="was made with"):
        extract_folder(folder, out, progress=False)  # the default frame_width differs


def test_interrupted_run_keeps_finished_videos(clips, tmp_path, monkeypatch):
    folder = _folder(tmp_path, clips, ["v0", "v1", "v2", "v3"])
    out = tmp_path / "vectors.npz"
    real = extract_video
    calls = []

    def interrupted_at_third(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(path, *args, **kwargs)

    monkeypatch.setattr(extractor, "extract_video", interrupted_at_third)
    with pytest.raises(KeyboardInterrupt):
        extract_folder(folder, out, config=SMALL, checkpoint_every=10, progress=False)
    assert read_vectors(out).ids.tolist() == ["v0", "v1"]
    assert not json.loads(report_path_for(out).read_text())["complete"]

    monkeypatch.setattr(extractor, "extract_video", real)
    report = extract_folder(folder, out, config=SMALL, progress=False)
    assert report.processed == ["v2", "v3"] and report.skipped == 2
    assert not list(out.parent.glob(".*.tmp"))  # no temporary file left behind


def test_two_worker_processes_give_the_same_file(clips, tmp_path):
    folder = _folder(tmp_path, clips, ["v0", "v1", "small"])
    (folder / "broken.mp4").write_bytes(clips["mp4v"].read_bytes()[:500])
    one, two = tmp_path / "one.npz", tmp_path / "two.npz"
    extract_folder(folder, one, config=SMALL, workers=1, progress=False)
    report = extract_folder(folder, two, config=SMALL, workers=2, progress=False)
    assert report.processed == ["v0", "v0_small", "v1"]
    assert [f for f, _ in report.failed] == [str(folder / "broken.mp4")]
    a, b = read_vectors(one), read_vectors(two)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.vectors, b.vectors)
    np.testing.assert_array_equal(a.num_descriptors, b.num_descriptors)


def test_cli_writes_the_vector_file(clips, tmp_path, capsys, monkeypatch):
    # main() quietens FFmpeg through these unless they are set; keep them out of other tests.
    monkeypatch.setenv("OPENCV_FFMPEG_LOGLEVEL", "-8")
    monkeypatch.setenv("OPENCV_LOG_LEVEL", "ERROR")
    folder = _folder(tmp_path, clips, ["v2", "v3"])
    out = tmp_path / "cli.npz"
    assert main([f"--videos={folder}", f"--out={out}", "--frame-width=64"]) == 0
    assert "2 extracted" in capsys.readouterr().out
    assert read_vectors(out).vectors.shape == (2, 128)


def test_vlad_and_bow_with_a_learned_codebook(clips, tmp_path):
    paths = [clips["v0"], clips["v1"], clips["v2"]]
    root = dataclasses.replace(SMALL, sift=SiftConfig(root_sift=True))
    codebook = learn_codebook(paths, config=root, size=8, seed=0)
    again = learn_codebook(paths, config=root, size=8, seed=0)
    np.testing.assert_array_equal(codebook.centers, again.centers)
    assert codebook.centers.shape == (8, 128) and codebook.root_sift

    codebook.save(tmp_path / "codebook.npz")
    with np.load(tmp_path / "codebook.npz", allow_pickle=False) as npz:
        np.testing.assert_array_equal(npz["centers"], codebook.centers)
    loaded = Codebook.load(tmp_path / "codebook.npz")
    assert loaded.sha256() == codebook.sha256()

    vlad = extract_video(clips["v0"], dataclasses.replace(root, pooling="vlad"), codebook=loaded)
    bow = extract_video(clips["v0"], dataclasses.replace(root, pooling="bow"), codebook=loaded)
    assert vlad.vector.shape == (8 * 128,) and bow.vector.shape == (8,)
    assert np.linalg.norm(vlad.vector) == pytest.approx(1.0, abs=1e-6)
    assert np.linalg.norm(bow.vector) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="RootSIFT"):
        extract_video(clips["v0"], dataclasses.replace(SMALL, pooling="vlad"), codebook=loaded)
    with pytest.raises(ValueError, match="needs a codebook"):
        extract_video(clips["v0"], dataclasses.replace(SMALL, pooling="bow"))


def _dataset(item_ids):
    n = len(item_ids)
    return Dataset(
        name="toy",
        users=np.zeros(n, np.int32),
        items=np.arange(n, dtype=np.int32),
        ratings=np.full(n, 5.0, np.float32),
        timestamps=np.zeros(n, np.int64),
        user_ids=np.array(["u"]),
        item_ids=np.array(item_ids),
    )


def test_load_item_vectors_aligns_to_item_ids(tmp_path, caplog):
    ds = _dataset(["a", "b", "c", "d"])
    stored = np.arange(3 * 4, dtype=np.float32).reshape(3, 4) + 1.0  # rows for c, a, zz
    path = tmp_path / "content.npz"
    save_vectors(path, ["c", "a", "zz"], stored)

    with caplog.at_level(logging.WARNING, logger="shortrec_jax.features.video.vectors"):
        vectors = load_item_vectors(path, ds)
    assert "2 of 4 items of toy have no vector" in caplog.text
    expected = np.zeros((4, 4), np.float32)
    expected[0] = stored[1]  # a
    expected[2] = stored[0]  # c
    np.testing.assert_array_equal(vectors, expected)

    # Item ids that differ from the file's ids go through id_map; unmapped items get zeros.
    mapped = load_item_vectors(path, ds, id_map={"b": "zz", "d": "a"})
    np.testing.assert_array_equal(
        mapped, np.stack([np.zeros(4), stored[2], np.zeros(4), stored[1]])
    )

    # The aligned vectors are the data set's item_vectors, read by the encoder's dense field.
    ds = dataclasses.replace(ds, item_vectors=vectors)
    encoder = FeatureEncoder.fit(ds, [FieldSpec("keyframes", "dense", column="item_vectors")])
    np.testing.assert_array_equal(encoder.encode(ds)["dense"], expected)


def test_malformed_vector_files_are_rejected(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, vectors=np.zeros((2, 3), np.float32))
    with pytest.raises(DataError, match="'ids' and 'vectors'"):
        read_vectors(path)
    with pytest.raises(ValueError, match="not distinct"):
        save_vectors(path, ["a", "a"], np.zeros((2, 3)))


def test_missing_opencv_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(ImportError, match=r'pip install "shortrec-jax\[video\]"'):
        extract_video("any.mp4")


def test_vector_files_need_no_opencv(tmp_path):
    # The vector-file part is what training and serving use; it must import without OpenCV.
    path = str(tmp_path / "v.npz")
    code = (
        "import sys; sys.modules['cv2'] = None\n"
        "from shortrec_jax.features.video.vectors import read_vectors, save_vectors\n"
        f"save_vectors({path!r}, ['b', 'a'], [[1.0], [2.0]])\n"
        f"print(read_vectors({path!r}).ids.tolist())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['a', 'b']"
