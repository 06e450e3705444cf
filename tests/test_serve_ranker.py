"""Serving the trained ranker: its run directory, scores equal to evaluate.py's, no recompiles,
EASE and sequence-model recallers, the cold-start path, the HTTP service."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from shortrec_jax.baselines import EASE
from shortrec_jax.data import load
from shortrec_jax.data.splits import subsample
from shortrec_jax.evaluation.registry import make_method
from shortrec_jax.pipeline import PipelineConfig, Recommender
from shortrec_jax.pipeline.rank import UnknownDemographicError
from shortrec_jax.pipeline.ranker_run import (
    PARAMS_FILE,
    RANKER_FILE,
    default_config,
    load_ranker,
    save_ranker,
)
from shortrec_jax.pipeline.recall import EASERecaller, RecallRequest
from tests.small_runs import untrained_sequence_run

ROOT = Path(__file__).resolve().parents[1]
# A small, fast ranker: one held-out draw, one epoch, a narrow network.
TINY_RANKER = {
    "quota": 20,
    "negatives": 5,
    "draws": 1,
    "epochs": 1,
    "hidden": [16],
    "batch_size": 256,
}
# EASE, two sequence models, item-CF, content and popular recallers.
PIPELINE = {"recall": {"ease_quota": 30, "sequence_quota": 30}}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """evaluate.py's "ranker" method fitted on a small log, saved, loaded back, and a
    recommender serving it with EASE, SASRec and BERT4Rec recallers."""
    data = subsample(load("ml-100k"), 0.2, seed=1)
    method = make_method("ranker", TINY_RANKER, seed=0).fit(data)
    workdir = tmp_path_factory.mktemp("ranker")
    save_ranker(workdir, method, default_config().data)
    ranker = load_ranker(workdir, data)
    runs = [
        untrained_sequence_run(f"configs/{name}_ml100k.py", data, tmp_path_factory.mktemp(name))
        for name in ("sasrec", "bert4rec")
    ]
    config = PipelineConfig.from_dict(PIPELINE)
    rec = Recommender(data, config, ranker_run=ranker, sequence_run=runs)
    rec.warm_up()
    return {"data": data, "method": method, "workdir": workdir, "ranker": ranker, "rec": rec}


def test_the_run_directory_round_trips_and_refuses_other_data_or_a_changed_file(served):
    method, ranker, workdir = served["method"], served["ranker"], served["workdir"]
    assert sorted(p.name for p in workdir.iterdir()) == [RANKER_FILE, PARAMS_FILE]
    with np.load(workdir / PARAMS_FILE, allow_pickle=False) as arrays:
        assert "heads/kernel" in arrays.files
    for name in ("user_embed", "item_embed", "heads"):
        np.testing.assert_array_equal(
            np.asarray(ranker.method.params[name]["embedding" if "embed" in name else "kernel"]),
            np.asarray(method.params[name]["embedding" if "embed" in name else "kernel"]),
        )
    assert ranker.method.config == method.config
    # Other interactions over the same users and items are fine (the statistics are refit);
    # other ids are not: they are the rows of the embeddings.
    other = dataclasses.replace(served["data"], item_ids=served["data"].item_ids[::-1].copy())
    with pytest.raises(ValueError, match="trained on other items"):
        load_ranker(workdir, other)
    broken = workdir.parent / "broken"
    broken.mkdir()
    (broken / RANKER_FILE).write_text((workdir / RANKER_FILE).read_text())
    payload = bytearray((workdir / PARAMS_FILE).read_bytes())
    payload[-1] ^= 1
    (broken / PARAMS_FILE).write_bytes(bytes(payload))
    with pytest.raises(ValueError, match="checksum"):
        load_ranker(broken, served["data"])
    with pytest.raises(FileNotFoundError, match=r"no ranker\.json"):
        load_ranker(workdir.parent / "nowhere")


def test_served_scores_are_the_evaluation_methods_scores(served):
    """evaluate.py's "ranker" gives its candidates 1 + the final score; the loaded ranker
    gives the same candidates the same score."""
    method, ranker = served["method"], served["ranker"]
    users = np.array([0, 7, 42])
    full = method.score_all(users)  # [B, I]
    width = int((full > 0).sum(axis=1).max())
    items = np.full((users.size, width), -1)
    for row in range(users.size):
        recalled = np.flatnonzero(full[row] > 0)
        items[row, : recalled.size] = recalled
    served_scores = ranker.scores(users, items)
    valid = items >= 0
    expected = np.take_along_axis(full, np.maximum(items, 0), axis=1) - 1.0
    np.testing.assert_allclose(served_scores[valid], expected[valid], atol=1e-6)
    # One user at a time, as a request is served: the same numbers.
    single = ranker.score(7, items[1][valid[1]])
    np.testing.assert_allclose(single, served_scores[1][valid[1]], atol=1e-7)


def test_no_recompile_across_candidate_counts(served):
    ranker = served["ranker"]
    full = ranker.score(3, np.arange(700))
    few = ranker.score(3, np.arange(3))
    ten = ranker.score(3, np.arange(250, 260))
    assert full.shape == (700,) and few.shape == (3,) and ten.shape == (10,)
    # The listwise softmax is over the given candidates: the values change, their order not.
    np.testing.assert_array_equal(np.argsort(-few), np.argsort(-full[:3]))
    np.testing.assert_array_equal(np.argsort(-ten), np.argsort(-full[250:260]))
    assert ranker.compilations() == 1


def test_ease_recaller_is_eases_row_and_follows_a_live_history(served):
    data = served["data"]
    recaller = EASERecaller(data, 10, l2=500.0)
    user = 11
    history = data.items[data.users == user]
    seen = np.zeros(data.num_items, bool)
    scores = recaller.scores(RecallRequest(history=history, seen=seen))
    row = EASE(l2=500.0).fit(data).score_all(np.array([user]))[0]
    proposed = row > 1e-5  # clear of float32 summation-order noise
    np.testing.assert_allclose(scores[proposed], row[proposed], rtol=1e-4, atol=1e-6)
    assert not np.any(np.isfinite(scores[row <= 0]))
    empty = recaller.scores(RecallRequest(history=np.zeros(0, np.int64), seen=seen))
    assert not np.any(np.isfinite(empty))


def test_recommender_ranks_fused_candidates_by_the_trained_model(served):
    rec, ranker, data = served["rec"], served["ranker"], served["data"]
    assert rec.ranking_model == "trained"
    assert rec.recallers == ("item-cf", "sasrec", "bert4rec", "ease", "content", "popular")
    user = data.user_ids[5]
    request = rec.resolve(user)
    result = rec.run(request, depth=10, stages="recall+rank")
    expected = ranker.score(request.user, result.candidates.items)
    np.testing.assert_allclose(result.rank_scores, expected, atol=1e-7)
    recs = rec.recommend(user=user, k=10, stages="recall+rank")
    scores = [r.score for r in recs]
    assert scores == sorted(scores, reverse=True)
    assert all(r.score == r.rank_score for r in recs)
    assert scores[0] == pytest.approx(float(expected.max()))
    seen = set(data.item_ids[data.items[data.users == request.user]])
    assert not seen & {r.item_id for r in recs}
    # Every stage's provenance, reranking included.
    full = rec.recommend(user=user, k=10)
    assert all(r.rank_score is not None and r.rerank_score == r.score for r in full)
    proposals = result.candidates.scores
    assert set(proposals) == set(rec.recallers)
    assert all(np.any(~np.isnan(proposals[name])) for name in ("ease", "sasrec", "bert4rec"))
    with pytest.raises(UnknownDemographicError, match="uses none"):
        rec.recommend(user=user, demographics={"age": "24"})
    assert rec.compilations() == {"rank": 1, "sasrec": 1, "bert4rec": 1}


def test_a_new_user_takes_the_cold_start_path(served):
    rec, data = served["rec"], served["data"]
    recs = rec.recommend(user="no-such-user", k=10)
    assert len(recs) == 10 and all(r.rank_score is None for r in recs)
    assert all({"popular", "sasrec", "bert4rec"} & set(r.recallers) for r in recs)
    # A new user with a live history: EASE and the sequence models recall from it; the list
    # follows the recall order, then reranking.
    history = data.item_ids[:3].tolist()
    ordered = rec.recommend(history=history, k=10, stages="recall+rank")
    assert [r.score for r in ordered] == [r.recall_score for r in ordered]
    assert any("ease" in r.recallers for r in ordered)
    assert len(rec.recommend(history=history, k=10)) == 10
    assert rec.compilations()["rank"] == 1


def test_the_http_service_serves_the_trained_ranker(served):
    pytest.importorskip("fastapi", reason="the HTTP service needs the `serve` extra")
    from fastapi.testclient import TestClient

    from shortrec_jax.pipeline.service import create_app

    rec = served["rec"]
    client = TestClient(create_app(rec))
    health = client.get("/healthz").json()
    assert health["ranker"] == "trained" and health["demographic_fields"] == []
    assert "ease" in health["recallers"] and "sasrec" in health["recallers"]
    user = rec.data.user_ids[9]
    body = client.post("/recommend", json={"user_id": user, "k": 5}).json()
    assert body["ranker"] == "trained" and body["known_user"]
    assert body["items"] == [r.to_dict() for r in rec.recommend(user=user, k=5)]
    assert all(item["rank_score"] is not None for item in body["items"])
    new = client.post("/recommend", json={"user_id": "no-such-user", "k": 3}).json()
    assert not new["known_user"] and all(item["rank_score"] is None for item in new["items"])
    refused = client.post("/recommend", json={"user_id": user, "demographics": {"age": "3"}})
    assert refused.status_code == 422 and "uses none" in refused.json()["detail"]
    assert rec.compilations()["rank"] == 1


def test_from_runs_loads_the_ranker_run_and_sequence_runs(served, tmp_path):
    data = served["data"]
    sasrec = untrained_sequence_run("configs/sasrec_ml100k.py", data, tmp_path / "sasrec")
    config = PipelineConfig.from_dict({**PIPELINE, "stages": "recall+rank"})
    with pytest.raises(ValueError, match="one ranking model"):
        Recommender.from_runs(tmp_path, data, ranker_workdir=served["workdir"])
    # The untrained sequence run has no checkpoint to load: build it by hand instead.
    rec = Recommender.from_runs(data=data, ranker_workdir=served["workdir"], config=config)
    assert rec.ranking_model == "trained" and "ease" in rec.recallers
    user = data.user_ids[2]
    assert [r.to_dict() for r in rec.recommend(user=user, k=5)] == [
        r.to_dict()
        for r in Recommender(
            data, config, ranker_run=served["ranker"], sequence_run=None
        ).recommend(user=user, k=5)
    ]
    with pytest.raises(ValueError, match="one run per model"):
        Recommender(data, config, ranker_run=served["ranker"], sequence_run=[sasrec, sasrec])


@pytest.mark.slow
def _run_module(module: str, *args: str) -> subprocess.CompletedProcess:
    """`python -m module args...` from the repository root, output captured."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_the_training_command_writes_a_run_the_cli_serves(tmp_path):
    workdir = tmp_path / "ranker"
    # A tuple field is a Python literal on the command line: hidden=(16,).
    tiny = [
        f"--config.ranker.{k}={tuple(v) if isinstance(v, list) else v}"
        for k, v in TINY_RANKER.items()
    ]
    trained = _run_module("shortrec_jax.pipeline.train_ranker", f"--workdir={workdir}", *tiny)
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "trained ranker saved to" in trained.stdout
    meta = json.loads((workdir / RANKER_FILE).read_text())
    assert meta["data"]["source"] == "ml-100k" and meta["ranker"]["epochs"] == 1
    served = _run_module(
        "shortrec_jax.recommend",
        f"--ranker_workdir={workdir}",
        "--pipeline.recall.ease_quota=20",
        "--user=196",
        "--k=3",
    )
    assert served.returncode == 0, served.stderr[-2000:]
    assert "user 196" in served.stdout and "ranker trained" in served.stdout
    assert "| ease " in served.stdout and "| rank " in served.stdout
