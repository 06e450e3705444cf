"""results.md: seconds per repeat of every method, computed by hand."""

from __future__ import annotations

from shortrec_jax.evaluation.report import markdown_table


def test_results_md_gives_each_methods_seconds_per_repeat():
    repeats = {
        "2020": {"precision@1": 0.5, "time/fit_seconds": 1.0, "time/eval_seconds": 0.5},
        "2021": {"precision@1": 0.7, "time/fit_seconds": 3.0, "time/eval_seconds": 0.3},
    }
    results = {
        "protocol": "paper",
        "dataset": {"name": "toy", "interactions": 10},
        "seeds": [2020, 2021],
        "methods": {
            "item-cf": {
                "mean": {"precision@1": 0.6},
                "std": {"precision@1": 0.1},
                "repeats": repeats,
            }
        },
    }
    lines = markdown_table(results, ["precision@1"]).splitlines()
    assert "| method | fit | scoring | slowest repeat | all repeats |" in lines
    # fit mean (1 + 3) / 2, scoring mean (0.5 + 0.3) / 2, slowest 3.3, together 1.5 + 3.3.
    assert "| item-cf | 2.0 | 0.4 | 3.3 | 4.8 |" in lines
