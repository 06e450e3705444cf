"""The HTTP service: answers, 4xx messages for bad requests, concurrency on a real socket."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("fastapi", reason="the HTTP service needs the `serve` extra")

from fastapi.testclient import TestClient

from shortrec_jax.config_files import load_config_file, merge_overrides
from shortrec_jax.data import load
from shortrec_jax.data.auto_fields import resolve_ctr_fields
from shortrec_jax.data.features import FeatureEncoder
from shortrec_jax.data.splits import subsample
from shortrec_jax.pipeline import Recommender
from shortrec_jax.pipeline.service import background_server, create_app
from shortrec_jax.training.run import untrained_run

TINY_CTR = {"model": {"embed_dim": 4, "cin_layers": (8, 8), "mlp_layers": (16,)}}
# Seconds a request on the real server may take before the test fails.
REQUEST_TIMEOUT = 60


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """A recommender over small data with an initialised (untrained) xDeepFM: the service's
    behaviour does not depend on how well the model ranks."""
    data = subsample(load("ml-100k"), 0.2, seed=1)
    config = load_config_file("configs/xdeepfm_ml100k.py")
    merge_overrides(config, TINY_CTR)
    workdir = tmp_path_factory.mktemp("ranker")
    fields = resolve_ctr_fields(config.data, data)
    FeatureEncoder.fit(data, fields).save(workdir / "encoders" / "features.json")
    run = untrained_run(workdir, config)
    rec = Recommender(data, ranker_run=run)
    app = create_app(rec)
    return {"rec": rec, "app": app, "client": TestClient(app)}


def expected(rec: Recommender, **query) -> list[dict]:
    return [r.to_dict() for r in rec.recommend(**query)]


def test_healthz_describes_the_loaded_pipeline(service):
    answer = service["client"].get("/healthz")
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "ok" and body["items"] == service["rec"].data.num_items
    assert body["demographic_fields"] == ["age", "gender", "occupation"]
    assert body["recallers"] == ["item-cf", "content", "popular"] and body["max_k"] == 100


def test_recommend_by_user_by_history_and_for_new_users(service):
    client, rec = service["client"], service["rec"]
    user = rec.data.user_ids[0]
    answer = client.post("/recommend", json={"user_id": user, "k": 5})
    assert answer.status_code == 200
    body = answer.json()
    assert body["known_user"] and body["k"] == 5 and body["stages"] == "recall+rank+rerank"
    assert body["items"] == expected(rec, user=user, k=5)
    item = body["items"][0]
    assert set(item) == {
        "item_id",
        "title",
        "score",
        "recall_score",
        "recall_scores",
        "recallers",
        "rank_score",
        "rerank_score",
    }
    history = rec.data.item_ids[:3].tolist()
    answer = client.post("/recommend", json={"history": history})
    assert answer.status_code == 200 and len(answer.json()["items"]) == 10
    assert answer.json()["items"] == expected(rec, history=history)
    demographics = {"age": 30, "gender": "M", "occupation": "engineer"}
    answer = client.post("/recommend", json={"user_id": 10**9, "demographics": demographics})
    assert answer.status_code == 200 and not answer.json()["known_user"]
    assert answer.json()["items"] == expected(rec, user="1000000000", demographics=demographics)
    assert rec.compilations() == {"rank": 1}


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"user_id": "1", "foo": 1}, 422, "unknown field 'foo'; allowed fields: user_id"),
        ({"user_id": "1", "k": 0}, 422, "k=0 must be in [1, 100]"),
        ({"user_id": "1", "k": -3}, 422, "k=-3 must be in [1, 100]"),
        ({"user_id": "1", "k": 10**6}, 422, "k=1000000 must be in [1, 100]"),
        ({"user_id": "1", "k": "ten"}, 422, "k: Input should be a valid integer"),
        ({}, 422, "give exactly one of user_id and history"),
        ({"user_id": "1", "history": ["1"]}, 422, "give exactly one of user_id and history"),
        ({"history": ["1", "nope"]}, 422, "item ids the catalogue does not know: ['nope']"),
        ({"history": ["1"] * 1001}, 422, "at most 1000 allowed"),
        ({"history": "1,2"}, 422, "history: Input should be a valid list"),
        ({"user_id": True}, 422, "user_id: must be a string or an integer id"),
        ({"user_id": "1", "demographics": {"zodiac": "leo"}}, 422, "['zodiac']"),
        ([1, 2], 422, "the body must be a JSON object"),
        ({"user_id": "\ud800"}, 422, "user_id: Value error, an id may not hold control"),
        ({"user_id": "a\x00b"}, 422, "lone surrogates (U+0000)"),
        ({"history": ["1", "\udfff"]}, 422, "history.1: Value error, an id may not hold"),
        ({"user_id": "1", "demographics": {"\ud800": "x"}}, 422, "lone surrogates (U+D800)"),
        ({"user_id": "1", "demographics": {"age": "\x1b[31m"}}, 422, "(U+001B)"),
        ({"user_id": "7" * 257}, 422, "an id has at most 256 characters, got 257"),
        ({"user_id": 2**64}, 422, "user_id: Input should be less than or equal to"),
        ({"user_id": "x" * (2 << 20)}, 413, "the request body is larger than 1048576 bytes"),
    ],
)
def test_bad_requests_get_a_4xx_that_says_what_is_wrong(service, body, status, message):
    # json.dumps escapes lone surrogates (\\ud800), as a JSON client would.
    answer = service["client"].post(
        "/recommend", content=json.dumps(body), headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == status
    assert message in answer.json()["detail"]


def test_malformed_json_is_a_400(service):
    answer = service["client"].post(
        "/recommend", content=b'{"user_id": ', headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 400
    assert answer.json()["detail"].startswith("malformed JSON at character 12")


def test_concurrent_requests_on_a_real_server_get_the_sequential_answers(service):
    rec = service["rec"]
    queries = [{"user_id": u, "k": 7} for u in rec.data.user_ids[:12].tolist()]
    queries += [{"history": rec.data.item_ids[:2].tolist()}, {"user_id": "new-user"}]
    sequential = [
        expected(rec, user=q.get("user_id"), history=q.get("history"), k=q.get("k", 10))
        for q in queries
    ]
    with background_server(service["app"]) as url:

        def ask(query: dict) -> list[dict]:
            request = urllib.request.Request(
                f"{url}/recommend",
                data=json.dumps(query).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as answer:
                return json.loads(answer.read())["items"]

        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(ask, queries * 2))
        with pytest.raises(urllib.error.HTTPError) as info:
            ask({"user_id": "1", "k": 0})
        assert info.value.code == 422
    assert answers == sequential * 2
    assert rec.compilations() == {"rank": 1}


def _json_values():
    from hypothesis import strategies as st

    # Any code point, lone surrogates and control characters included; long strings; integers
    # beyond int64.
    any_text = st.text(st.characters(blacklist_categories=()), max_size=8)
    long_text = st.text(st.characters(blacklist_categories=()), min_size=250, max_size=3000)
    big_ints = st.integers(min_value=2**62) | st.integers(max_value=-(2**62))
    scalars = (
        st.none() | st.booleans() | st.integers() | big_ints | st.floats() | any_text | long_text
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner),
        max_leaves=12,
    )


def test_random_json_bodies_get_a_valid_answer_or_a_4xx_never_a_5xx(service):
    import os

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    keys = st.sampled_from(["user_id", "history", "k", "demographics", "stages", "extra"])
    bodies = _json_values() | st.dictionaries(keys, _json_values(), max_size=4)

    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        derandomize=bool(os.environ.get("CI")),
    )
    @given(body=bodies, ascii_only=st.booleans())
    def check(body, ascii_only):
        # Both encodings of the same JSON: lone surrogates as \\ud800 escapes, or as the
        # raw bytes a careless client writes (not valid UTF-8).
        text = json.dumps(body, ensure_ascii=ascii_only)
        content = text.encode("utf-8", "surrogatepass")
        answer = service["client"].post("/recommend", content=content)
        assert answer.status_code == 200 or 400 <= answer.status_code < 500, answer.text
        if answer.status_code != 200:
            assert answer.json()["detail"], "a refusal says what is wrong"

    check()


def test_slow_or_short_bodies_time_out_and_docs_can_be_switched_off(service):
    import socket
    import urllib.parse

    app = create_app(service["rec"], max_body_bytes=4096, read_timeout_s=0.5, docs=False)
    client = TestClient(app)
    assert client.get("/docs").status_code == 404
    assert client.get("/openapi.json").status_code == 404
    assert service["client"].get("/docs").status_code == 200
    big = client.post("/recommend", content=b"[" + b"1," * 4096 + b"1]")
    assert big.status_code == 413
    with background_server(app) as url:
        address = urllib.parse.urlsplit(url)
        # A body shorter than its Content-Length: 408 once the read timeout has passed.
        with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
            started = time.monotonic()
            sock.sendall(
                b"POST /recommend HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b'Content-Length: 100\r\n\r\n{"user_id": '
            )
            answer = _read_answer(sock)
            waited = time.monotonic() - started
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"did not arrive within 0.5 s" in answer
        assert 0.4 <= waited < 10
        # A declared size over the limit is refused before any of the body is read.
        with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
            sock.sendall(b"POST /recommend HTTP/1.1\r\nHost: x\r\nContent-Length: 999999\r\n\r\n")
            assert _read_answer(sock).startswith(b"HTTP/1.1 413")
        # The server still answers.
        with urllib.request.urlopen(f"{url}/healthz", timeout=REQUEST_TIMEOUT) as ok:
            assert ok.status == 200


def _read_answer(sock) -> bytes:
    """What the server sends until it closes the connection (bounded by the socket timeout)."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
        if b"\r\n\r\n" in b"".join(chunks) and b"}" in chunks[-1]:
            break
    return b"".join(chunks)
