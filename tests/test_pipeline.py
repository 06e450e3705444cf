"""The recall -> ranking -> reranking pipeline: each stage, cold start, concurrency, evaluation."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from shortrec_jax.baselines import ItemCF
from shortrec_jax.config_files import load_config_file, merge_overrides
from shortrec_jax.data import Dataset, load
from shortrec_jax.data.splits import Split, random_split, subsample
from shortrec_jax.evaluation.deep import CTRMethod
from shortrec_jax.evaluation.measures import evaluate_full_ranking, evaluate_held_out
from shortrec_jax.pipeline import (
    PipelineConfig,
    RecallConfig,
    Recommender,
    RerankConfig,
    UnknownItemsError,
)
from shortrec_jax.pipeline.method import NOT_SHOWN, PipelineMethod, make_pipeline_method
from shortrec_jax.pipeline.rank import UnknownDemographicError
from shortrec_jax.pipeline.recall import (
    ItemCFRecaller,
    PopularRecaller,
    Recall,
    Recaller,
    RecallRequest,
)
from shortrec_jax.pipeline.rerank import MMR, CategoryCap, Exclusion, NoveltyBoost, Reranker
from shortrec_jax.recommend import format_table, parse_demographics
from tests.small_runs import untrained_sequence_run

ROOT = Path(__file__).resolve().parents[1]
TINY_CTR = {
    "model": {"embed_dim": 4, "cin_layers": (8, 8), "mlp_layers": (16,)},
    "train": {"batch_size": 512, "num_epochs": 1, "warmup_steps": 2, "max_steps_in_flight": 1},
    "log": {"progress_bar": False, "tensorboard": False},
}
# Star Wars: its interactions are removed, so it is a catalogue item no model has seen.
NEW_ITEM = "50"
# Return of the Jedi and The Empire Strikes Back share (nearly) all of its genres.
SEQUELS = ["181", "172"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Small data without any interaction of NEW_ITEM, a tiny trained xDeepFM, a recommender."""
    data = subsample(load("ml-100k"), 0.3, seed=0)
    data = data.take(data.items != data.item_index(NEW_ITEM))
    ranker_dir = tmp_path_factory.mktemp("ranker")
    config = load_config_file("configs/xdeepfm_ml100k.py")
    merge_overrides(config, TINY_CTR)
    ranker_run = CTRMethod(config, ranker_dir).fit(data).run
    sequence_run = untrained_sequence_run(
        "configs/bert4rec_ml100k.py", data, tmp_path_factory.mktemp("sequence")
    )
    rec = Recommender(data, ranker_run=ranker_run, sequence_run=sequence_run)
    rec.warm_up()
    return {"data": data, "rec": rec, "ranker_dir": ranker_dir, "sequence_run": sequence_run}


# -- recall ------------------------------------------------------------------------------------


class FixedRecaller(Recaller):
    def __init__(self, name: str, scores: list[float], quota: int) -> None:
        super().__init__(quota)
        self.name = name
        self._scores = np.asarray(scores, np.float32)

    def scores(self, request: RecallRequest) -> np.ndarray:
        return self._scores


def test_recall_fuses_by_reciprocal_rank_dedupes_and_drops_seen_items():
    inf = -np.inf
    a = FixedRecaller("a", [0.9, 0.8, 0.7, inf, 0.1], quota=3)
    b = FixedRecaller("b", [inf, 5.0, inf, 9.0, 1.0], quota=2)
    seen = np.array([True, False, False, False, False])
    cands = Recall([a, b], fusion_k=1.0, max_candidates=10)(RecallRequest(np.zeros(0), seen))
    # a proposes 1, 2, 4 (item 0 is seen; quota 3); b proposes 3, 1 (quota 2).
    # Fused, rank from 1: item 1: 1/(1+1) + 1/(1+2) = 5/6; item 3: 1/2; item 2: 1/3; item 4: 1/4.
    np.testing.assert_array_equal(cands.items, [1, 3, 2, 4])
    np.testing.assert_allclose(cands.fused, [5 / 6, 1 / 2, 1 / 3, 1 / 4], rtol=1e-6)
    np.testing.assert_allclose(cands.scores["a"], [0.8, np.nan, 0.7, 0.1])
    np.testing.assert_allclose(cands.scores["b"], [5.0, 9.0, np.nan, np.nan])
    assert cands.proposers(0) == ("a", "b") and cands.proposers(1) == ("b",)
    cut = Recall([a, b], fusion_k=1.0, max_candidates=2)(RecallRequest(np.zeros(0), seen))
    np.testing.assert_array_equal(cut.items, [1, 3])
    weighted = Recall([a, b], fusion_k=1.0, max_candidates=10, weights={"b": 2.0})
    # Item 1: 1/2 + 2/3; item 3: 2/2; item 2: 1/3; item 4: 1/4.
    np.testing.assert_allclose(
        weighted(RecallRequest(np.zeros(0), seen)).fused, [7 / 6, 1.0, 1 / 3, 1 / 4], rtol=1e-6
    )
    # Without quotas every proposed item has a rank: item 4 is a's 3rd and b's 3rd.
    full = Recall([a, b], fusion_k=1.0, max_candidates=10).fused_scores(
        RecallRequest(np.zeros(0), seen), np.array([4, 0])
    )
    np.testing.assert_allclose(full, [1 / 4 + 1 / 4, 0.0], rtol=1e-6)


def test_item_cf_recaller_equals_summed_item_cf_over_the_whole_history(world):
    data = world["data"]
    user = int(np.argmax(np.bincount(data.users) == 20))  # a user with 20 interactions
    history = np.flatnonzero(np.isin(np.arange(data.num_items), data.items[data.users == user]))
    recaller = ItemCFRecaller(
        data, 10, neighbours=100, history_length=len(history), recency_half_life=0.0
    )
    scores = recaller.scores(RecallRequest(history, np.zeros(data.num_items, bool)))
    cf = ItemCF(values="binary", aggregate="sum", k=None, max_neighbours=100).fit(data)
    expected = cf.score_all(np.array([user]))[0]
    np.testing.assert_allclose(np.where(expected > 0, expected, -np.inf), scores, rtol=1e-5)


def test_trending_popularity_prefers_recent_interactions():
    day = 86_400
    # Item 0: three interactions 100 days old; item 1: two from the last day.
    data = Dataset(
        name="toy",
        users=np.array([0, 1, 2, 0, 1], np.int32),
        items=np.array([0, 0, 0, 1, 1], np.int32),
        ratings=np.ones(5, np.float32),
        timestamps=np.array([0, 0, 0, 100 * day, 100 * day], np.int64),
        user_ids=np.array(["u0", "u1", "u2"]),
        item_ids=np.array(["i0", "i1", "i2"]),
    )
    request = RecallRequest(np.zeros(0, np.int64), np.zeros(3, bool))
    counts = PopularRecaller(data, 3, half_life_days=0.0).scores(request)
    np.testing.assert_array_equal(counts, [3.0, 2.0, -np.inf])
    trending = PopularRecaller(data, 3, half_life_days=10.0).scores(request)
    np.testing.assert_allclose(trending, [3 * 0.5**10, 2.0, -np.inf], rtol=1e-6)


def test_content_recall_reaches_an_item_nobody_has_interacted_with(world):
    rec, data = world["rec"], world["data"]
    new = data.item_index(NEW_ITEM)
    assert new not in set(data.items.tolist())
    cands = rec.recall(rec.resolve(None, SEQUELS).recall)
    position = int(np.flatnonzero(cands.items == new)[0])
    assert "content" in cands.proposers(position)
    assert not {"item-cf", "popular"} & set(cands.proposers(position))


def test_sequence_recall_follows_the_live_history_and_compiles_once(world):
    rec = world["rec"]
    sequence = next(r for r in rec.recall.recallers if r.name == "bert4rec")
    first = sequence.scores(rec.resolve(None, ["1", "2"]).recall)
    second = sequence.scores(rec.resolve(None, ["1", "2", "3", "4", "5", "6"]).recall)
    assert np.all(np.isfinite(first)) and not np.allclose(first, second)
    assert sequence.compilations() == 1


# -- ranking -----------------------------------------------------------------------------------


def test_ranking_compiles_once_for_any_candidate_count_and_ignores_padding(world):
    rec = world["rec"]
    ranker = rec.ranker
    items = np.arange(700)
    full = ranker.score(0, items)
    assert full.shape == (700,) and np.all((full > 0) & (full < 1))
    np.testing.assert_allclose(ranker.score(0, items[:3]), full[:3], rtol=1e-6)
    np.testing.assert_allclose(ranker.score(0, items[250:260]), full[250:260], rtol=1e-6)
    rec.recommend(user=rec.data.user_ids[1], k=5)
    rec.recommend(history=SEQUELS, k=7)
    assert rec.compilations() == {"rank": 1, "bert4rec": 1}


def test_demographics_set_a_new_users_features(world):
    ranker = world["rec"].ranker
    assert ranker.demographic_fields == ("age", "gender", "occupation")
    items = np.arange(20)
    anonymous = ranker.score(-1, items)
    student = ranker.score(-1, items, {"age": "20", "gender": "F", "occupation": "student"})
    assert not np.allclose(anonymous, student)
    # A value training never saw takes the reserved id, as a missing one does.
    np.testing.assert_array_equal(ranker.score(-1, items, {"age": "999"}), anonymous)
    with pytest.raises(UnknownDemographicError, match=r"\['zodiac'\].*age"):
        ranker.score(-1, items, {"zodiac": "leo"})


# -- reranking ---------------------------------------------------------------------------------


def test_mmr_picks_by_marginal_relevance_with_hand_derived_objectives():
    # Items 0 and 1 have the same vector, item 2 an orthogonal one.
    unit = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], np.float32)
    reranker = Reranker(mmr=MMR(unit, lam=0.5))
    order, scores = reranker(np.array([0, 1, 2]), np.array([0.9, 0.8, 0.5]), depth=3)
    # Step 1: 0.5 * 0.9 = 0.45 (item 0). Step 2: item 1: 0.4 - 0.5 * 1 = -0.1; item 2: 0.25.
    # Step 3: item 1 at -0.1.
    np.testing.assert_array_equal(order, [0, 2, 1])
    np.testing.assert_allclose(scores, [0.45, 0.25, -0.1], rtol=1e-6)
    prefix, _ = reranker(np.array([0, 1, 2]), np.array([0.9, 0.8, 0.5]), depth=2)
    np.testing.assert_array_equal(prefix[:2], order[:2])


def test_exclusions_boosts_and_category_caps():
    items = np.array([3, 1, 0, 2])
    relevance = np.array([0.9, 0.8, 0.7, 0.1], np.float32)
    excluded = Exclusion(np.array([False, True, False, False]))
    order, _ = Reranker(exclusion=excluded)(items, relevance, depth=4)
    np.testing.assert_array_equal(items[order], [3, 0, 2])
    boost = NoveltyBoost(
        novelty=np.array([0.0, 0.0, 1.0, 1.0], np.float32),
        tail=np.array([False, False, False, True]),
        novelty_weight=0.25,
        long_tail_weight=0.5,
    )
    order, scores = Reranker(boost=boost)(items, relevance, depth=4)
    # Boosted: item 3: 0.9 + 0.25 + 0.5 = 1.65; item 2: 0.1 + 0.25 = 0.35; item 0: 0.7.
    np.testing.assert_array_equal(items[order], [3, 1, 0, 2])
    np.testing.assert_allclose(scores, [1.65, 0.8, 0.7, 0.35], rtol=1e-6)
    # Items 3, 1 and 0 share category 0, item 2 has category 1. One item per category: after
    # item 3 only item 2 fits; then nothing does, and the best remaining come anyway.
    members = np.array([[True, False], [True, False], [False, True], [True, False]])
    order, _ = Reranker(caps=CategoryCap(members, cap=1))(items, relevance, depth=4)
    np.testing.assert_array_equal(items[order], [3, 2, 1, 0])


def test_reranking_diversifies_the_list(world):
    rec = world["rec"]
    user = rec.data.user_ids[3]
    plain = rec.recommend(user=user, k=10, stages="recall+rank")
    diverse = rec.recommend(user=user, k=10)
    features = MMR.of(rec.data, "genres", 0.5).unit

    def mean_similarity(recs):
        idx = [rec.data.item_index(r.item_id) for r in recs]
        sims = features[idx] @ features[idx].T
        return (sims.sum() - np.trace(sims)) / (len(idx) * (len(idx) - 1))

    assert mean_similarity(diverse) < mean_similarity(plain)


# -- the recommender ---------------------------------------------------------------------------


def test_recommend_reports_every_stage_and_never_an_already_seen_item(world):
    rec, data = world["rec"], world["data"]
    user = data.user_ids[0]
    seen = set(data.item_ids[data.items[data.users == 0]].tolist())
    recs = rec.recommend(user=user, k=10)
    assert len(recs) == 10 and not seen & {r.item_id for r in recs}
    assert len({r.item_id for r in recs}) == 10
    for r in recs:
        assert r.title == data.item_titles[data.item_index(r.item_id)]
        assert r.recallers and set(r.recallers) == set(r.recall_scores) <= set(rec.recallers)
        assert 0 < r.rank_score < 1 and r.score == r.rerank_score
    # Without caps the greedy objective never increases along the list.
    assert all(a.score >= b.score for a, b in itertools.pairwise(recs))
    recall_only = rec.recommend(user=user, k=10, stages="recall")
    assert all(r.rank_score is None and r.rerank_score is None for r in recall_only)
    assert [r.score for r in recall_only] == sorted((r.score for r in recall_only), reverse=True)
    ranked = [r.score for r in rec.recommend(user=user, k=10, stages="recall+rank")]
    assert ranked == sorted(ranked, reverse=True)
    # Ranked by P(like) x (fused / largest fused) ** recall_exponent.
    result = rec.run(rec.resolve(user), 10, "recall+rank")
    share = result.candidates.fused / result.candidates.fused.max()
    relevance = result.rank_scores * share**rec.config.rank.recall_exponent
    np.testing.assert_allclose(ranked, relevance[result.order[:10]], rtol=1e-6)
    assert json.loads(json.dumps(recs[0].to_dict()))["item_id"] == recs[0].item_id


def test_a_live_history_changes_the_list_at_once(world):
    rec = world["rec"]
    user = rec.data.user_ids[0]
    before = rec.recommend(user=user, k=10)
    after = rec.recommend(user=user, history=SEQUELS, k=10)
    assert [r.item_id for r in before] != [r.item_id for r in after]
    assert not set(SEQUELS) & {r.item_id for r in after}


def test_cold_start_users_and_items_get_sensible_lists(world):
    rec, data = world["rec"], world["data"]
    assert not rec.knows_user("no-such-user")
    anonymous = rec.recommend(user="no-such-user", k=10)
    assert len(anonymous) == 10
    assert all({"popular", "bert4rec"} & set(r.recallers) for r in anonymous)
    student = rec.recommend(
        user="no-such-user", k=10, demographics={"age": 22, "gender": "F", "occupation": "student"}
    )
    assert len(student) == 10
    assert [r.rank_score for r in student] != [r.rank_score for r in anonymous]
    # A new user whose only history is the new item: content recall still finds its genres.
    only_new = rec.recommend(history=[NEW_ITEM], k=10)
    assert len(only_new) == 10 and NEW_ITEM not in {r.item_id for r in only_new}
    proposed = rec.run(rec.resolve(None, [NEW_ITEM]), depth=10).candidates.scores["content"]
    assert np.count_nonzero(~np.isnan(proposed)) == rec.config.recall.content_quota
    # The new item itself is recalled and ranked with its content features.
    result = rec.run(rec.resolve(None, SEQUELS), depth=10)
    new = data.item_index(NEW_ITEM)
    position = int(np.flatnonzero(result.candidates.items == new)[0])
    assert 0 < result.rank_scores[position] < 1


def test_bad_requests_raise_with_messages(world):
    rec = world["rec"]
    with pytest.raises(UnknownItemsError, match=r"\['nope', 'x'\]") as info:
        rec.recommend(history=["1", "nope", "x", "nope"])
    assert info.value.item_ids == ["nope", "x"]
    with pytest.raises(ValueError, match=r"k=0 must be in \[1, 100\]"):
        rec.recommend(user="1", k=0)
    with pytest.raises(ValueError, match="k=101"):
        rec.recommend(user="1", k=101)
    with pytest.raises(ValueError, match="a user, a history, or both"):
        rec.recommend()
    with pytest.raises(ValueError, match="at most 1000"):
        rec.recommend(history=["1"] * 1001)


def test_concurrent_requests_get_the_sequential_answers(world):
    rec = world["rec"]
    users = rec.data.user_ids[:12].tolist()
    queries = [{"user": u} for u in users] + [{"history": SEQUELS}, {"user": "new", "k": 5}]

    def ask(query):
        return rec.recommend(**query)

    sequential = [ask(q) for q in queries]
    with ThreadPoolExecutor(max_workers=8) as pool:
        concurrent = list(pool.map(ask, queries * 2))
    assert concurrent == sequential * 2


def test_config_from_nested_dict_rejects_unknown_fields():
    config = PipelineConfig.from_dict(
        {"recall": {"item_cf_quota": 5, "content_features": ["genres", "kg"]}, "stages": "recall"}
    )
    assert config.recall == RecallConfig(item_cf_quota=5, content_features=("genres", "kg"))
    assert config.rerank == RerankConfig()
    # The command line's "--pipeline.rerank.exclude_items=1,2" arrives as ("1,2",).
    assert PipelineConfig.from_dict({"rerank": {"exclude_items": ("1,2",)}}).rerank == (
        RerankConfig(exclude_items=("1", "2"))
    )
    with pytest.raises(ValueError, match=r"pipeline\.recall: unknown fields \['quota'\]"):
        PipelineConfig.from_dict({"recall": {"quota": 5}})
    with pytest.raises(ValueError, match="stages"):
        PipelineConfig(stages="rank")


def test_exclusions_are_never_shown(world):
    rec = world["rec"]
    top = rec.recommend(user=rec.data.user_ids[2], k=3)
    banned = tuple(r.item_id for r in top)
    config = PipelineConfig(rerank=RerankConfig(exclude_items=banned))
    strict = Recommender(
        rec.data, config, ranker_run=rec.ranker.run, sequence_run=world["sequence_run"]
    )
    assert not set(banned) & {r.item_id for r in strict.recommend(user=rec.data.user_ids[2])}
    with pytest.raises(ValueError, match="unknown item ids"):
        Recommender(
            rec.data,
            PipelineConfig(stages="recall", rerank=RerankConfig(exclude_items=("nope",))),
        )


# -- evaluation --------------------------------------------------------------------------------


def small_split(data: Dataset, users: int = 30) -> Split:
    """A random 80/20 split whose test part keeps only the first `users` users (speed)."""
    split = random_split(data, (0.8, 0.2), seed=0)
    test = split.test.take(split.test.users < users)
    return Split(train=split.train, valid=None, test=test, protocol=split.protocol)


def test_pipeline_method_scores_the_catalogue_as_served_and_given_candidates(world):
    rec = world["rec"]
    split = small_split(world["data"])
    # The ranking model saw the whole data set: no matter for checking the mechanics.
    fitted = Recommender(split.train, ranker_run=rec.ranker.run, sequence_run=world["sequence_run"])
    method = PipelineMethod.from_recommender(fitted, list_length=20)
    users = np.unique(split.test.users)[:4]
    scores = method.score_all(users)
    assert scores.shape == (4, split.train.num_items)
    for row, user in enumerate(users):
        shown = scores[row] > NOT_SHOWN
        assert not shown[split.train.items[split.train.users == user]].any()
        np.testing.assert_array_equal(np.sort(scores[row, shown]), np.arange(1, shown.sum() + 1))
        served = fitted.recommend(user=split.train.user_ids[user], k=5)
        top = np.argsort(-scores[row], kind="stable")[:5]
        assert [fitted.data.item_index(r.item_id) for r in served] == top.tolist()
    items = np.array([[0, 1, 2, 2], [3, 4, 5, 6], [7, 8, 9, 10], [0, 0, 0, 0]])
    given = method.score(users, items)
    assert given.shape == (4, 4) and given[0, 2] == given[0, 3]
    ranked = PipelineMethod.from_recommender(
        Recommender(split.train, PipelineConfig(stages="recall+rank"), ranker_run=rec.ranker.run)
    )
    np.testing.assert_allclose(ranked.score(users, items)[1], rec.ranker.score(users[1], items[1]))
    metrics = evaluate_full_ranking(
        method,
        split,
        ks=(10,),
        threshold=None,
        exclude_valid=True,
        beyond_ks=(10,),
        cold_user_max_ratings=5,
        head_fraction=0.2,
        diversity_feature="genres",
        batch_size=16,
    )
    assert 0 <= metrics["recall@10"] <= 1 and 0 < metrics["diversity@10"] <= 1


def test_the_recall_ablation_fits_and_runs_the_studys_protocol(world):
    split = small_split(world["data"])
    method = make_pipeline_method("pipeline-recall", {}, seed=0)
    assert method.pipeline.stages == "recall"
    method.fit(split.train)
    metrics = evaluate_held_out(
        method,
        split.train,
        split.test,
        max_n=5,
        threshold=4.0,
        beyond_ks=(5,),
        cold_user_max_ratings=5,
        head_fraction=0.2,
        diversity_feature="genres",
        batch_size=16,
    )
    assert 0 <= metrics["precision@5"] <= 1 and metrics["users"] > 0
    with pytest.raises(ValueError, match="needs a train_config"):
        make_pipeline_method("pipeline", {}, seed=0)
    with pytest.raises(ValueError, match="unknown fields"):
        make_pipeline_method("pipeline-recall", {"stage": "recall"}, seed=0)
    with pytest.raises(ValueError, match="unknown fields"):
        make_pipeline_method("pipeline-recall", {"pipeline": {"recall": {"x": 1}}}, seed=0)


# -- the command line --------------------------------------------------------------------------


def test_format_table_and_demographics_parsing(world):
    rec = world["rec"]
    recs = rec.recommend(user=rec.data.user_ids[0], k=3)
    table = format_table(recs, rec.recallers).splitlines()
    assert table[0].startswith("| # ") and "rerank" in table[0] and len(table) == 5
    assert recs[0].title[:20] in table[2]
    assert parse_demographics(["age=24", "gender=F"]) == {"age": "24", "gender": "F"}
    with pytest.raises(ValueError, match="column=value"):
        parse_demographics(["age"])


@pytest.mark.slow
def test_cli_prints_titles_with_stage_scores(world):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "shortrec_jax.recommend",
            f"--workdir={world['ranker_dir']}",
            "--history=181,172",
            "--k=3",
            "--pipeline.rerank.mmr_lambda=1.0",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "anonymous, 2 items of history" in out.stdout and "| rank " in out.stdout
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "shortrec_jax.recommend",
            f"--workdir={world['ranker_dir']}",
            "--history=nope",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert bad.returncode == 2 and "['nope']" in bad.stderr
