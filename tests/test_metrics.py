"""Metric values derived by hand, ties included, and tie handling checked by enumeration."""

import itertools
import math

import numpy as np
import pytest

from shortrec_jax.data.items import head_items
from shortrec_jax.metrics import (
    auc,
    catalogue_coverage,
    gauc,
    intra_list_diversity,
    long_tail_share,
    metrics_from_ranked_lists,
    novelty,
    per_user_auc,
    rank_metrics_from_ranks,
    ranking_metrics,
    study_precision,
)

L2, L3, L4, L6 = (math.log2(x) for x in (2, 3, 4, 6))


def test_ranking_metrics_without_ties_by_hand():
    scores = np.array(
        [
            [0.9, 0.8, 0.7, 0.6, 0.5],  # order 0 1 2 3 4: relevant at positions 0 and 2
            [0.1, 0.2, 0.3, 0.4, 0.5],  # order 4 3 2 1 0: relevant at position 4
            [0.5, 0.4, 0.3, 0.2, 0.1],  # nothing relevant: not evaluated
        ]
    )
    relevant = np.array([[1, 0, 1, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]], bool)
    m = ranking_metrics(scores, relevant, (1, 3, 5))
    # User 0 (R = 2).
    assert m["precision@1"][0] == 1.0
    assert m["precision@3"][0] == pytest.approx(2 / 3)
    assert m["precision@5"][0] == pytest.approx(2 / 5)
    assert m["recall@1"][0] == pytest.approx(1 / 2)
    assert m["recall@3"][0] == 1.0
    # DCG@3 = 1/log2(2) + 1/log2(4); ideal = 1/log2(2) + 1/log2(3).
    assert m["ndcg@3"][0] == pytest.approx((1 / L2 + 1 / L4) / (1 / L2 + 1 / L3))
    assert m["hr@1"][0] == 1.0
    assert m["mrr@3"][0] == 1.0
    # AP@3 = (P@1 + P@3) / min(3, 2) = (1 + 2/3) / 2.
    assert m["map@3"][0] == pytest.approx((1 + 2 / 3) / 2)
    # User 1 (R = 1, at position 4).
    assert m["precision@3"][1] == 0.0
    assert m["hr@3"][1] == 0.0
    assert m["hr@5"][1] == 1.0
    assert m["recall@5"][1] == 1.0
    assert m["mrr@5"][1] == pytest.approx(1 / 5)
    assert m["ndcg@5"][1] == pytest.approx(1 / L6)
    assert m["map@5"][1] == pytest.approx(1 / 5)
    # User 2 has no relevant candidate: every metric is NaN.
    assert all(np.isnan(v[2]) for v in m.values())


def test_ranking_metrics_with_ties_by_hand():
    # Candidates 0 and 1 tie at the top, only 0 is relevant: each order has probability 1/2.
    m = ranking_metrics(np.array([[1.0, 1.0, 0.0]]), np.array([[1, 0, 0]], bool), (1, 2))
    assert m["precision@1"][0] == pytest.approx(0.5)
    assert m["hr@1"][0] == pytest.approx(0.5)
    assert m["mrr@1"][0] == pytest.approx(0.5)
    assert m["ndcg@1"][0] == pytest.approx(0.5)
    assert m["precision@2"][0] == pytest.approx(0.5)
    assert m["recall@2"][0] == 1.0
    assert m["hr@2"][0] == 1.0
    assert m["mrr@2"][0] == pytest.approx((1 + 1 / 2) / 2)
    assert m["ndcg@2"][0] == pytest.approx((1 + 1 / L3) / 2)
    # AP@2: 1 in order (0, 1), 1/2 in order (1, 0).
    assert m["map@2"][0] == pytest.approx(0.75)


def test_tie_group_across_the_cut_by_hand():
    # Position 0 is candidate 0 (irrelevant); candidates 1-4 tie (2 of 4 relevant) and fill
    # positions 1-4, so the cut at 2 or 3 falls inside the group.
    scores = np.array([[3.0, 2.0, 2.0, 2.0, 2.0, 1.0]])
    relevant = np.array([[0, 1, 0, 1, 0, 1]], bool)
    m = ranking_metrics(scores, relevant, (2, 3))
    assert m["precision@3"][0] == pytest.approx((0 + 2 * 2 / 4) / 3)
    assert m["hr@2"][0] == pytest.approx(2 / 4)
    # No hit in positions 1 and 2: (2/4) * (1/3).
    assert m["hr@3"][0] == pytest.approx(1 - (2 / 4) * (1 / 3))
    # First hit at position 1 with p = 1/2, at position 2 with p = 1/2 * 2/3.
    assert m["mrr@3"][0] == pytest.approx(0.5 / 2 + (1 / 3) / 3)


def _brute_force(scores: np.ndarray, relevant: np.ndarray, ks: tuple[int, ...]) -> dict:
    """Averages `metrics_from_ranked_lists` over every order consistent with the scores."""
    totals: dict[str, float] = {}
    count = 0
    for perm in itertools.permutations(range(scores.size)):
        s = scores[list(perm)]
        if np.any(s[1:] > s[:-1]):
            continue
        m = metrics_from_ranked_lists(relevant[list(perm)][None], [relevant.sum()], ks)
        for k, v in m.items():
            totals[k] = totals.get(k, 0.0) + v[0]
        count += 1
    return {k: v / count for k, v in totals.items()}


@pytest.mark.parametrize("seed", range(6))
def test_tie_handling_equals_the_average_over_all_tie_orders(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 3, size=6).astype(float)  # few distinct values: many ties
    relevant = rng.random(6) < 0.5
    relevant[rng.integers(6)] = True
    ks = (1, 2, 3, 4, 6, 8)
    exact = ranking_metrics(scores[None], relevant[None], ks)
    for name, value in _brute_force(scores, relevant, ks).items():
        assert exact[name][0] == pytest.approx(value, abs=1e-12), name


def test_mask_excludes_padding_and_infinite_scores_rank_in_order():
    # Column 0 is padding: its high score, NaN or relevance must not count.
    scores = np.array([[5.0, 1.0, 0.0], [np.nan, 1.0, 0.0]])
    mask = np.array([[0, 1, 1], [0, 1, 1]], bool)
    relevant = np.array([[1, 1, 0], [1, 0, 1]], bool)
    m = ranking_metrics(scores, relevant, (1,), mask)
    assert m["precision@1"].tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="NaN"):
        ranking_metrics(scores, relevant, (1,))
    # -inf is a real (last) score of a candidate, not a tie with the excluded slots.
    m = ranking_metrics(np.array([[np.inf, -np.inf, 0.0]]), np.array([[0, 1, 0]], bool), (3,))
    assert m["mrr@3"][0] == pytest.approx(1 / 3)


def test_cut_off_beyond_the_candidates_counts_missing_positions_as_irrelevant():
    m = ranking_metrics(np.array([[2.0, 1.0]]), np.array([[0, 1]], bool), (5,))
    assert m["precision@5"][0] == pytest.approx(1 / 5)
    assert m["recall@5"][0] == 1.0
    assert m["ndcg@5"][0] == pytest.approx(1 / L3)


def test_ranked_lists_agree_with_single_item_ranks():
    ranks = np.array([0, 2, 11, 4])
    lists = np.zeros((4, 12), bool)
    lists[np.arange(4), ranks] = True
    m = metrics_from_ranked_lists(lists, np.ones(4, int), (1, 5, 10))
    for name, value in rank_metrics_from_ranks(ranks, (1, 5, 10)).items():
        assert m[name].mean() == pytest.approx(value)


def test_ranked_lists_with_relevant_items_outside_the_list():
    # R = 3 but only one relevant item made the list, at position 1.
    m = metrics_from_ranked_lists(np.array([[0, 1]], bool), np.array([3]), (2, 4))
    assert m["recall@2"][0] == pytest.approx(1 / 3)
    assert m["ndcg@4"][0] == pytest.approx((1 / L3) / (1 / L2 + 1 / L3 + 1 / L4))
    assert m["map@2"][0] == pytest.approx((1 / 2) / 2)
    with pytest.raises(ValueError, match="more relevant"):
        metrics_from_ranked_lists(np.array([[1, 1]], bool), np.array([1]), (2,))


def test_study_precision_by_hand():
    scores = np.array([[3.0, 2.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    relevant = np.array([[1, 0, 1, 0], [1, 1, 0, 0], [0, 0, 0, 0]], bool)
    mask = np.array([[1, 1, 1, 0], [1, 1, 1, 1], [0, 0, 0, 0]], bool)
    p = study_precision(scores, relevant, (1, 2, 5), mask)
    # User 0 has 3 held-out items: P@5 is over min(5, 3) = 3 of them.
    assert p[0].tolist() == pytest.approx([1.0, 0.5, 2 / 3])
    # A constant scorer gets the user's base rate (2 of 4) at every N.
    assert p[1].tolist() == pytest.approx([0.5, 0.5, 0.5])
    assert np.isnan(p[2]).all()  # no held-out items


def test_auc_with_ties_and_gauc_by_hand():
    # Pairs (pos, neg): (0.9, 0.9) tie = 0.5, (0.9, 0.1) = 1, (0.4, 0.9) = 0, (0.4, 0.1) = 1.
    assert auc(np.array([1, 0, 1, 0]), np.array([0.9, 0.9, 0.4, 0.1])) == pytest.approx(0.625)
    users = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    labels = np.array([1, 0, 0, 1, 1, 0, 1, 1])
    scores = np.array([0.5, 0.5, 0.2, 0.1, 0.9, 0.5, 0.3, 0.4])
    # User 0: pairs (.5,.5) = 0.5 and (.5,.2) = 1 -> 0.75. User 1: (.1,.5) = 0, (.9,.5) = 1 ->
    # 0.5. User 2 has no negative. GAUC = (3 * 0.75 + 3 * 0.5) / 6.
    u, a, c = per_user_auc(users, labels, scores)
    assert u.tolist() == [0, 1]
    assert a.tolist() == pytest.approx([0.75, 0.5])
    assert c.tolist() == [3, 3]
    assert gauc(users, labels, scores) == pytest.approx(0.625)
    assert np.isnan(gauc(np.array([0, 0]), np.array([1, 1]), np.array([0.1, 0.2])))


def test_per_user_auc_matches_auc_on_each_user():
    rng = np.random.default_rng(0)
    users = rng.integers(0, 5, 200)
    labels = rng.random(200) < 0.4
    scores = rng.integers(0, 4, 200).astype(float)  # ties within users
    u, a, _ = per_user_auc(users, labels, scores)
    for user, value in zip(u, a, strict=True):
        rows = users == user
        assert value == pytest.approx(auc(labels[rows], scores[rows]))


def test_coverage_novelty_long_tail_by_hand():
    lists = np.array([[0, 1, -1], [1, 2, -1]])
    assert catalogue_coverage(lists, 5) == pytest.approx(3 / 5)
    # Shares of 4 users: 4/4, 2/4, 1/4 and (never seen, counted as 1 user) 1/4 -> 0, 1, 2, 2 bits.
    item_users = np.array([4, 2, 1, 0])
    assert novelty(np.array([[0, 1], [2, 3]]), item_users, 4) == pytest.approx(5 / 4)
    assert np.isnan(novelty(np.full((2, 2), -1), item_users, 4))
    counts = np.array([5, 1, 5, 3, 0])
    # The 2 most popular of 5 items; items 0 and 2 tie at 5.
    assert head_items(counts, 0.4).tolist() == [True, False, True, False, False]
    # With room for 1, the tie goes to the lower index.
    assert head_items(counts, 0.2).tolist() == [True, False, False, False, False]
    head = head_items(counts, 0.4)
    # Filled slots hold items 0, 1, 3: two of three are in the tail.
    assert long_tail_share(np.array([[0, 1], [3, -1]]), head) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="item indices"):
        catalogue_coverage(np.array([[5]]), 5)


def test_intra_list_diversity_by_hand():
    features = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], float)
    lists = np.array([[0, 1, 2], [0, 3, -1], [2, -1, -1]])
    # List 0: cos(0,1) = 0, cos(0,2) = cos(1,2) = 1/sqrt(2): mean distance
    # (1 + 2 (1 - 1/sqrt(2))) / 3. List 1: item 3 has no features -> distance 1. List 2 has
    # one item and is left out.
    first = (1 + 2 * (1 - 1 / math.sqrt(2))) / 3
    assert intra_list_diversity(lists, features) == pytest.approx((first + 1) / 2)
    assert np.isnan(intra_list_diversity(np.array([[1, -1]]), features))


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="cut-offs"):
        ranking_metrics(np.zeros((1, 2)), np.ones((1, 2), bool), (0,))
    with pytest.raises(ValueError, match="one shape"):
        ranking_metrics(np.zeros((1, 2)), np.ones((1, 3), bool), (1,))
    with pytest.raises(ValueError, match="head fraction"):
        head_items(np.ones(3), 1.5)
