"""Atomic writes: the old file or the new one, never a mix, and no leftovers."""

from __future__ import annotations

import json
import os
import stat

import pytest

from shortrec_jax import io


def test_write_atomic_replaces_and_uses_the_umask_permissions(tmp_path):
    target = tmp_path / "sub" / "results.json"
    io.write_json_atomic(target, {"b": 1, "a": [1, 2]})
    io.write_atomic(target, json.dumps({"new": True}))
    assert json.loads(target.read_text()) == {"new": True}
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    assert [p.name for p in target.parent.iterdir()] == ["results.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "encoder.json"
    target.write_text("old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(io.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        io.write_atomic(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["encoder.json"]


def test_validation_curve_keeps_the_last_record_of_each_epoch(tmp_path):
    from shortrec_jax.training.curves import plot_curves, validation_curve
    from shortrec_jax.training.logger import MetricLogger

    logger = MetricLogger(tmp_path, tensorboard=False)
    logger.write(8, "valid", {"epoch": 1, "ndcg@10": 0.1})
    logger.write(16, "valid", {"epoch": 2, "ndcg@10": 0.2})
    logger.write(16, "valid", {"epoch": 2, "ndcg@10": 0.3})  # a resumed run logs epoch 2 again
    logger.write(16, "train", {"epoch": 2, "loss": 1.0})
    logger.close()
    assert validation_curve(tmp_path, "ndcg@10") == ([1, 2], [0.1, 0.3])
    with pytest.raises(ValueError, match="hr@10"):
        validation_curve(tmp_path, "hr@10")
    plot_curves([tmp_path], "ndcg@10", tmp_path / "curve.png")
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"
