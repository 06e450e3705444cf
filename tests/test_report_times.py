"""results.md: seconds per repeat of every method, computed by hand; the plots' line styles."""

from __future__ import annotations

from shortrec_jax.evaluation.report import markdown_table, method_style


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


def test_plot_lines_stay_distinct_beyond_ten_methods():
    # matplotlib's default cycle has 10 colours: the 11th method changes marker instead.
    styles = [method_style(i, f"method-{i}") for i in range(30)]
    assert len({(style["color"], style["marker"]) for style in styles}) == 30
    assert styles[0]["color"] == styles[10]["color"] != styles[1]["color"]
    assert method_style(4, "random") == {"linestyle": "--", "color": "0.4"}
