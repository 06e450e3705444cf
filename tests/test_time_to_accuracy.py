"""benchmarks/time_to_accuracy: the time to the best checkpoint, found by its step; the floors a
sequential run clears."""

import pytest

from benchmarks.time_to_accuracy import _floors_cleared, _to_best


def run(best_step: int, best_epoch: float) -> dict:
    # A step-cadence run: validations every 25 steps of 58-step epochs, so their epochs are
    # fractions; results.json names the best by step and by its (rounded-up) epoch.
    log = [
        {"kind": "train", "step": 20, "epoch": 1, "time": 105.0},
        {"kind": "valid", "step": 25, "epoch": 25 / 58, "time": 110.0},
        {"kind": "valid", "step": 50, "epoch": 50 / 58, "time": 120.5},
        {"kind": "valid", "step": 75, "epoch": 75 / 58, "time": 131.0},
    ]
    return {"log": log, "launched": 100.0, "best_step": best_step, "best_epoch": best_epoch}


def test_to_best_reads_the_validation_at_the_best_step():
    assert _to_best(run(best_step=50, best_epoch=1)) == pytest.approx(20.5)


def test_to_best_refuses_a_best_step_without_a_validation():
    with pytest.raises(RuntimeError, match="best step 60"):
        _to_best(run(best_step=60, best_epoch=2))


def test_floors_cleared_needs_both_of_a_floors_metrics():
    # Floors: recency-weighted item-CF HR@10 0.147 / NDCG@10 0.080; EASE NDCG@10 0.071.
    assert _floors_cleared(0.100, 0.190) == "beats item-CF, recency-weighted history, EASE"
    # Above the NDCG@10 of both, below item-CF's HR@10: EASE only.
    assert _floors_cleared(0.085, 0.140) == "beats EASE"
    assert _floors_cleared(0.070, 0.200) == "beats no floor"
