"""The protocols on tiny hand-built data sets with fake methods whose results follow by hand."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from shortrec_jax.data.dataset import Dataset, Ragged
from shortrec_jax.data.splits import Split, leave_one_out, random_split, subsample
from shortrec_jax.evaluation.candidates import PerUserCandidates
from shortrec_jax.evaluation.measures import (
    evaluate_ctr,
    evaluate_full_ranking,
    evaluate_held_out,
    evaluate_leave_one_out,
    sample_negatives,
)
from shortrec_jax.evaluation.protocols import (
    ctr_protocol,
    full_ranking_protocol,
    leave_one_out_protocol,
    paper_protocol,
    size_protocol,
)
from shortrec_jax.evaluation.repeats import summarise
from shortrec_jax.evaluation.report import RepeatStore
from shortrec_jax.interface import Method

HELD_OUT = {
    "max_n": 5,
    "threshold": 4.0,
    "beyond_ks": (2,),
    "cold_user_max_ratings": 1,
    "head_fraction": 2 / 6,
    "diversity_feature": "genres",
    "batch_size": 1,  # one user per call, so batching is exercised
}


def make_dataset(
    users, items, ratings, timestamps=None, num_users=None, num_items=6, genres=None
) -> Dataset:
    num_users = num_users or max(users) + 1
    genres = genres or [["A"]] * num_items
    return Dataset(
        name="tiny",
        users=np.asarray(users, np.int32),
        items=np.asarray(items, np.int32),
        ratings=np.asarray(ratings, np.float32),
        timestamps=np.asarray(
            timestamps if timestamps is not None else np.arange(len(users)), np.int64
        ),
        user_ids=np.array([f"u{i}" for i in range(num_users)]),
        item_ids=np.array([f"i{i}" for i in range(num_items)]),
        item_multi_hot={"genres": Ragged.from_lists(genres)},
    )


class Fixed(Method):
    """Scores from a given [U, I] matrix; optionally says its scores are probabilities."""

    name = "fixed"

    def __init__(self, table, probabilities: bool = False) -> None:
        self.table = np.asarray(table, np.float32)
        self.outputs_probabilities = probabilities

    def fit(self, train: Dataset, valid: Dataset | None = None) -> Fixed:
        return self

    def score_all(self, users: np.ndarray) -> np.ndarray:
        return self.table[np.asarray(users)]


class Oracle(Fixed):
    """Knows every true rating (0 where the user never rated the item)."""

    name = "oracle"

    def __init__(self, truth: Dataset) -> None:
        table = np.zeros((truth.num_users, truth.num_items), np.float32)
        table[truth.users, truth.items] = truth.ratings + 1
        super().__init__(table)


class Recorder(Method):
    """Constant scores; records what it was fitted on."""

    name = "constant"

    def __init__(self, log: list, tag: str) -> None:
        self.log, self.tag = log, tag

    def fit(self, train: Dataset, valid: Dataset | None = None) -> Recorder:
        self.num_items = train.num_items
        self.log.append((self.tag, train.num_interactions, valid))
        return self

    def score_all(self, users: np.ndarray) -> np.ndarray:
        return np.zeros((np.asarray(users).size, self.num_items), np.float32)


def held_out_case() -> tuple[Dataset, Dataset, Dataset]:
    """Train: user 0 rated items 0, 1; user 1 rated item 0. Test: user 0 rated 2 (5), 3 (2),
    4 (4); user 1 rated 1 (1), 5 (4)."""
    genres = [["A"], ["A", "B"], ["A"], ["B"], ["A"], ["B"]]
    full = make_dataset(
        [0, 0, 1, 0, 0, 0, 1, 1], [0, 1, 0, 2, 3, 4, 1, 5], [3, 3, 3, 5, 2, 4, 1, 4], genres=genres
    )
    return full, full.take(np.arange(3)), full.take(np.arange(3, 8))


def test_held_out_ranking_by_hand():
    full, train, test = held_out_case()
    m = evaluate_held_out(Oracle(full), train, test, **HELD_OUT)
    # User 0 ranks 2 (5), 4 (4), 3 (2); user 1 ranks 5 (4), 1 (1).
    assert m["precision@1"] == 1.0
    assert m["precision@2"] == pytest.approx((1 + 1 / 2) / 2)
    # P@3: user 0 2 of 3; user 1 has 2 items: 1 of min(3, 2).
    assert m["precision@3"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert m["precision@5"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert m["base_rate"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert m["users"] == 2
    # Cold users (<= 1 training rating): user 1 only.
    assert m["cold_users/users"] == 1
    assert m["cold_users/precision@2"] == pytest.approx(1 / 2)
    # Head = 2 of 6 items by training count: items 0 (2) and 1 (1). User 1's tail: item 5 only.
    assert m["rare_items/precision@1"] == 1.0
    assert m["rare_items/precision@2"] == pytest.approx((1 + 1) / 2)
    # Top-2 lists: [2, 4] and [5, 1]; 4 of 6 items; 3 of 4 slots in the tail.
    assert m["coverage@2"] == pytest.approx(4 / 6)
    assert m["long_tail@2"] == pytest.approx(3 / 4)
    # Each listed item was rated by at most 1 of the 2 training users: 1 bit each.
    assert m["novelty@2"] == pytest.approx(1.0)
    # Genres: [A] vs [A] -> 0; [B] vs [A, B] -> 1 - 1/sqrt(2).
    assert m["diversity@2"] == pytest.approx((0 + 1 - 1 / math.sqrt(2)) / 2)


def test_constant_scores_give_the_base_rate_at_every_n():
    _, train, test = held_out_case()
    m = evaluate_held_out(Fixed(np.zeros((2, 6))), train, test, **HELD_OUT)
    for n in range(1, 6):
        assert m[f"precision@{n}"] == pytest.approx(m["base_rate"])


def test_candidates_pad_each_users_items():
    _, _, test = held_out_case()
    c = PerUserCandidates.of(test)
    assert c.users.tolist() == [0, 1]
    assert c.items.tolist() == [[2, 3, 4], [1, 5, 0]]
    assert c.mask.tolist() == [[True, True, True], [True, True, False]]
    assert c.ratings[1, :2].tolist() == [1, 4]


def full_ranking_case() -> Split:
    """User 0: train {0}, valid {1}, test {2 (5), 3 (3)}; user 1 only trains."""
    full = make_dataset([0, 0, 0, 0, 1], [0, 1, 2, 3, 4], [4, 4, 5, 3, 4], num_items=5)
    return Split(full.take([0, 4]), full.take([1]), full.take([2, 3]))


FULL = {
    "ks": (1, 2, 3),
    "beyond_ks": (2,),
    "cold_user_max_ratings": 0,
    "head_fraction": 0.2,
    "diversity_feature": None,
    "batch_size": 2,
}


def test_full_ranking_by_hand():
    split = full_ranking_case()
    scores = np.array([[9, 8, 1, 7, 5], [0, 0, 0, 0, 0]])
    method = Fixed(scores)
    # Training item 0 and validation item 1 leave; the ranking is 3, 4, 2; relevant {2, 3}.
    m = evaluate_full_ranking(method, split, threshold=None, exclude_valid=True, **FULL)
    assert m["users"] == 1
    assert m["precision@1"] == 1.0
    assert m["recall@2"] == pytest.approx(1 / 2)
    assert m["mrr@3"] == 1.0
    assert m["ndcg@3"] == pytest.approx((1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3)))
    assert m["map@3"] == pytest.approx((1 + 2 / 3) / 2)
    assert m["coverage@2"] == pytest.approx(2 / 5)
    assert "diversity@2" not in m
    # Rated >= 4: only item 2 (position 2) is relevant.
    m = evaluate_full_ranking(method, split, threshold=4.0, exclude_valid=True, **FULL)
    assert m["hr@2"] == 0.0
    assert m["hr@3"] == 1.0
    assert m["mrr@3"] == pytest.approx(1 / 3)
    # The validation item stays: ranking 1, 3, 4, 2.
    m = evaluate_full_ranking(method, split, threshold=None, exclude_valid=False, **FULL)
    assert m["precision@1"] == 0.0
    assert m["mrr@3"] == pytest.approx(1 / 2)
    # Head (1 of 5 items): item 0. Every relevant item is in the tail: same metrics.
    assert m["rare_items/mrr@3"] == pytest.approx(1 / 2)
    assert m["cold_users/users"] == 0
    assert math.isnan(m["cold_users/mrr@3"])


def loo_case() -> Split:
    """User 0 by time: items 0, 1 train, 2 validates, 3 tests; user 1: too short, trains."""
    full = make_dataset(
        [0, 0, 0, 0, 1], [0, 1, 2, 3, 5], [4, 4, 4, 4, 4], timestamps=[1, 2, 3, 4, 1]
    )
    split = leave_one_out(full)
    assert split.test.items.tolist() == [3]
    return split


LOO = {
    "ks": (1, 2, 5),
    "negative_sampling": "uniform",
    "seed": 0,
    "beyond_ks": (2,),
    "cold_user_max_ratings": 20,
    "head_fraction": 0.2,
    "diversity_feature": "genres",
    "batch_size": 4,
}


def test_leave_one_out_rank_by_hand():
    split = loo_case()
    # Item 3 (the test item) scores 5; item 4 scores 6 and outranks it; item 5 scores 4.
    method = Fixed(np.array([[10, 9, 8, 5, 6, 4], [0] * 6]))
    m = evaluate_leave_one_out(method, split, exclude_valid=True, sampled_negatives=0, **LOO)
    # Candidates 3, 4, 5: rank 1.
    assert m["hr@1"] == 0.0
    assert m["hr@2"] == 1.0
    assert m["ndcg@2"] == pytest.approx(1 / math.log2(3))
    assert m["mrr@5"] == pytest.approx(1 / 2)
    assert not any(k.startswith("sampled") for k in m)
    # With the validation item (8) a candidate: rank 2.
    m = evaluate_leave_one_out(method, split, exclude_valid=False, sampled_negatives=0, **LOO)
    assert m["mrr@5"] == pytest.approx(1 / 3)
    # Two sampled negatives: only items 4 and 5 lie outside the history and the positive.
    m = evaluate_leave_one_out(method, split, exclude_valid=True, sampled_negatives=2, **LOO)
    assert m["sampled2_uniform/hr@1"] == 0.0
    assert m["sampled2_uniform/mrr@5"] == pytest.approx(1 / 2)
    with pytest.raises(ValueError, match="fewer than 3 items"):
        evaluate_leave_one_out(method, split, exclude_valid=True, sampled_negatives=3, **LOO)


def test_sampled_negatives_avoid_history_and_positive():
    rng = np.random.default_rng(0)
    n = 3000
    ds = make_dataset(
        rng.integers(0, 40, n), rng.integers(0, 60, n), np.full(n, 4.0), num_users=40, num_items=60
    )
    users = np.arange(40)
    positives = rng.integers(0, 60, 40)
    popularity = np.bincount(ds.items, minlength=60).astype(float)
    popularity[:5] = 0  # never drawn
    kwargs = {"popularity": popularity}
    neg = sample_negatives(
        ds, users, positives, 5, rng=np.random.default_rng(1), batch_size=7, **kwargs
    )
    history = np.zeros((40, 60), bool)
    history[ds.users, ds.items] = True
    for u in users:
        row = neg[u]
        assert len(set(row.tolist())) == 5  # without replacement
        assert not history[u, row].any()
        assert positives[u] not in row
        assert (row >= 5).all()
    # The draw is the same for every batch size.
    again = sample_negatives(
        ds, users, positives, 5, rng=np.random.default_rng(1), batch_size=40, **kwargs
    )
    np.testing.assert_array_equal(neg, again)


def test_ctr_by_hand():
    full = make_dataset([0, 0, 0, 1, 1, 1], [0, 1, 2, 0, 1, 2], [5, 4, 2, 1, 4, 4], num_items=3)
    split = Split(full.take([0]), None, full.take([1, 2, 3, 4, 5]))
    table = np.array([[0.1, 0.8, 0.3], [0.5, 0.5, 0.9]])
    # Test pairs (label, score): u0: (1, .8), (0, .3); u1: (0, .5), (1, .5), (1, .9).
    # Pairs (pos, neg): (.8,.3)=1 (.8,.5)=1 (.5,.3)=1 (.5,.5)=.5 (.9,.3)=1 (.9,.5)=1 -> 5.5/6.
    options = {"threshold": 4.0, "cold_user_max_ratings": 0, "head_fraction": 0.4, "batch_size": 1}
    m = evaluate_ctr(Fixed(table), split, **options)
    assert m["auc"] == pytest.approx(5.5 / 6)
    # Per user: u0 1.0 (2 pairs), u1 (.5 vs .5 = .5, .9 vs .5 = 1) 0.75 (3 pairs).
    assert m["gauc"] == pytest.approx((2 * 1.0 + 3 * 0.75) / 5)
    assert "logloss" not in m
    m = evaluate_ctr(Fixed(table, probabilities=True), split, **options)
    expected = -(np.log(0.8) + np.log(0.7) + np.log(0.5) + np.log(0.5) + np.log(0.9)) / 5
    assert m["logloss"] == pytest.approx(expected)
    # Head (round(0.4 * 3) = 1 item by training count): item 0. Rare pairs: items 1 and 2:
    # u0 (1, .8), (0, .3); u1 (1, .5), (1, .9) -> every positive above the negative.
    assert m["rare_items/auc"] == 1.0
    assert m["rare_items/pairs"] == 4
    # Cold users (no training rating): user 1, AUC 0.75 as above.
    assert m["cold_users/auc"] == pytest.approx(0.75)
    assert m["cold_users/pairs"] == 3


def random_log(seed: int = 0, n: int = 400) -> Dataset:
    rng = np.random.default_rng(seed)
    pairs = rng.choice(30 * 20, size=n, replace=False)
    return make_dataset(pairs // 20, pairs % 20, rng.integers(1, 6, n), num_users=30, num_items=20)


def factory(log: list | None = None, truth: Dataset | None = None):
    def make_method(name, config, *, seed, workdir):
        if log is not None:
            log.append((name, seed, workdir))
        if name == "oracle":
            return Oracle(truth)
        return Recorder([], name)

    return make_method


def test_paper_protocol_oracle_matches_a_direct_count():
    ds = random_log()
    seeds = [3, 4]
    out = paper_protocol(factory(truth=ds), ds, {"oracle": {}}, seeds, max_n=3, beyond_ks=(2,))
    summary = out["methods"]["oracle"]
    assert sorted(summary["repeats"]) == ["3", "4"]
    for seed in seeds:
        test = random_split(ds, (0.8, 0.2), seed=seed).test
        expected = {n: [] for n in (1, 2, 3)}
        for u in np.unique(test.users):
            r = np.sort(test.ratings[test.users == u])[::-1]
            for n in expected:
                top = r[: min(n, r.size)]
                expected[n].append(np.mean(top >= 4))
        for n, values in expected.items():
            assert summary["repeats"][str(seed)][f"precision@{n}"] == pytest.approx(np.mean(values))
    values = [summary["repeats"][str(s)]["precision@2"] for s in seeds]
    assert summary["mean"]["precision@2"] == pytest.approx(np.mean(values))
    assert summary["std"]["precision@2"] == pytest.approx(np.std(values, ddof=1))
    assert out["seeds"] == seeds and out["protocol"] == "paper"


def test_full_ranking_protocol_oracle_finds_every_held_out_item():
    ds = random_log(1)
    out = full_ranking_protocol(factory(truth=ds), ds, {"oracle": {}}, [0], ks=(1, 5))
    mean = out["methods"]["oracle"]["mean"]
    # Every test item outscores every unrated item and the history is excluded; 20 ratings
    # per user at most, so at most 2 test items: all found in the top 5.
    assert mean["recall@5"] == 1.0
    assert mean["hr@5"] == 1.0
    assert mean["precision@1"] == 1.0


def test_leave_one_out_and_ctr_protocols_run_every_repeat():
    ds = random_log(5, n=200)  # about 7 of 20 items per user: room for 5 negatives
    fitted: list = []

    def make_method(name, config, *, seed, workdir):
        return Recorder(fitted, f"{name}/{seed}")

    out = leave_one_out_protocol(
        make_method, ds, {"constant": {}}, [0, 1], ks=(1, 4, 10), sampled_negatives=5
    )
    assert sorted(out["methods"]["constant"]["repeats"]) == ["0", "1"]
    mean = out["methods"]["constant"]["mean"]
    assert {"hr@10", "ndcg@10", "mrr@10", "sampled5_pop/hr@10", "rare_items/hr@10"} <= set(mean)
    # Constant scores tie the target with its 5 sampled negatives: in expectation over a
    # random order it is in the top k with probability k / 6, and its reciprocal rank
    # averages (1 + 1/2 + ... + 1/6) / 6. Counting ties as wins or losses gives 1 or 0.
    assert mean["sampled5_pop/hr@1"] == pytest.approx(1 / 6)
    assert mean["sampled5_pop/hr@4"] == pytest.approx(4 / 6)
    assert mean["sampled5_pop/mrr@10"] == pytest.approx(sum(1 / r for r in range(1, 7)) / 6)
    # Leave-one-out fits with the validation part.
    assert len(fitted) == 2 and all(valid is not None for _, _, valid in fitted)
    out = ctr_protocol(make_method, ds, {"constant": {}}, [0])
    # Constant scores: every (positive, negative) pair is a tie.
    assert out["methods"]["constant"]["mean"]["auc"] == 0.5


class NoValidRecorder(Recorder):
    """A Recorder that says it learns nothing from a validation part."""

    uses_valid = False


@pytest.mark.parametrize("valid_as_history", [True, False])
def test_leave_one_out_fits_methods_without_validation_use_on_both_parts(valid_as_history):
    ds = random_log(5, n=200)
    split = leave_one_out(ds, with_valid=True)
    fitted: list = []

    def make_method(name, config, *, seed, workdir):
        cls = NoValidRecorder if name == "no-valid" else Recorder
        return cls(fitted, name)

    leave_one_out_protocol(
        make_method,
        ds,
        {"no-valid": {}, "constant": {}},
        [0],
        ks=(1,),
        valid_as_history=valid_as_history,
    )
    by_name = {tag: (count, valid) for tag, count, valid in fitted}
    # The method that tunes on validation always gets it apart; the other learns from it too.
    assert by_name["constant"][0] == split.train.num_interactions
    assert by_name["constant"][1].num_interactions == split.valid.num_interactions
    if valid_as_history:
        assert by_name["no-valid"] == (ds.num_interactions - split.test.num_interactions, None)
    else:
        assert by_name["no-valid"][0] == split.train.num_interactions
        assert by_name["no-valid"][1] is not None


def test_size_protocol_trains_on_nested_fractions():
    ds = random_log(2)
    fitted: list = []

    def make_method(name, config, *, seed, workdir):
        return Recorder(fitted, f"{name}/{seed}")

    out = size_protocol(
        make_method, ds, {"constant": {}}, [5], train_fractions=(0.5, 1.0), max_n=2, beyond_ks=(1,)
    )
    train = random_split(ds, (0.8, 0.2), seed=5).train
    assert [n for _, n, _ in fitted] == [
        subsample(train, 0.5, seed=5).num_interactions,
        train.num_interactions,
    ]
    fractions = out["methods"]["constant"]["fractions"]
    assert sorted(fractions) == ["0.5", "1"]
    # A constant scorer gets the base rate whatever it trained on.
    for summary in fractions.values():
        assert summary["mean"]["precision@1"] == pytest.approx(summary["mean"]["base_rate"])


def test_restart_skips_finished_repeats(tmp_path: Path):
    ds = random_log(3)
    log: list = []
    store_path = tmp_path / "state.json"
    methods = {"oracle": {"k": 1}, "constant": {}}
    kwargs = {"max_n": 2, "beyond_ks": (1,), "workdir": tmp_path}
    first = paper_protocol(
        factory(log, ds), ds, methods, [0, 1], store=RepeatStore(store_path), **kwargs
    )
    assert [(n, s) for n, s, _ in log] == [
        ("oracle", 0),
        ("constant", 0),
        ("oracle", 1),
        ("constant", 1),
    ]
    assert log[0][2] == tmp_path / "methods" / "paper" / "oracle" / "seed=0"
    log.clear()
    again = paper_protocol(
        factory(log, ds), ds, methods, [0, 1], store=RepeatStore(store_path), **kwargs
    )
    assert log == []
    assert again["methods"]["oracle"]["mean"] == first["methods"]["oracle"]["mean"]
    # A third seed runs alone; a changed method config reruns that method only.
    methods["oracle"] = {"k": 2}
    paper_protocol(
        factory(log, ds), ds, methods, [0, 1, 2], store=RepeatStore(store_path), **kwargs
    )
    assert sorted((n, s) for n, s, _ in log) == [
        ("constant", 2),
        ("oracle", 0),
        ("oracle", 1),
        ("oracle", 2),
    ]


def test_protocols_are_deterministic_and_validate_arguments():
    ds = random_log(4)
    a, b = (paper_protocol(factory(truth=ds), ds, {"oracle": {}}, [7], max_n=3) for _ in range(2))
    for key in ("precision@3", "coverage@10", "rare_items/precision@2"):
        assert a["methods"]["oracle"]["mean"][key] == b["methods"]["oracle"]["mean"][key]
    with pytest.raises(ValueError, match="distinct"):
        paper_protocol(factory(truth=ds), ds, {"oracle": {}}, [1, 1])
    with pytest.raises(ValueError, match="no methods"):
        paper_protocol(factory(truth=ds), ds, {}, [1])
    with pytest.raises(ValueError, match="diversity_feature"):
        paper_protocol(factory(truth=ds), ds, {"oracle": {}}, [1], diversity_feature="moods")


def test_summarise_skips_undefined_values():
    s = summarise({"0": {"a": 1.0, "b": float("nan")}, "1": {"a": 3.0, "b": float("nan")}})
    assert s["mean"] == {"a": 2.0, "b": None}
    assert s["std"]["a"] == pytest.approx(math.sqrt(2))
    assert summarise({"0": {"a": 1.0}})["std"]["a"] == 0.0
