"""Latency and throughput of the recommender: in process, and over HTTP on 127.0.0.1.

  python -m benchmarks.pipeline --workdir=runs/xdeepfm_ml100k \
      [--bert4rec_workdir=runs/bert4rec_ml100k] [--requests=400] [--seconds=60] [--clients=8]
  python -m benchmarks.pipeline --ranker_workdir=runs/ranker_ml100k --ease_quota=100

Trained runs first (a minute or two each on 2 CPU cores):
  python train.py --config=configs/xdeepfm_ml100k.py --workdir=runs/xdeepfm_ml100k
  python train.py --config=configs/bert4rec_ml100k.py --workdir=runs/bert4rec_ml100k
  python -m shortrec_jax.pipeline.train_ranker --workdir=runs/ranker_ml100k

Each load sends `--requests` requests (or fewer when `--seconds` runs out first): known users
in a seeded random order, every fifth request an anonymous live history of three items.
Measured: `Recommender.recommend()` called by 1 and by `--clients` threads, and POST
/recommend on a uvicorn server in this process (`service.background_server`) with 1 and
`--clients` client threads, each on its own keep-alive connection. Latency is per request
(p50, p99, milliseconds); throughput is completed requests per wall-clock second. The models
are compiled before any timing starts.
"""

from __future__ import annotations

import argparse
import http.client
import json
import platform
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.common import device_description, git_commit, print_table
from shortrec_jax.pipeline import PipelineConfig, Recommender

# Every this-many-th request is an anonymous user with a live history instead of a known user.
HISTORY_EVERY = 5
HISTORY_LENGTH = 3


def request_mix(rec: Recommender, count: int, seed: int) -> list[dict[str, Any]]:
    """`count` request bodies: known users in a seeded order, some anonymous histories."""
    rng = np.random.default_rng(seed)
    users = rng.permutation(rec.data.user_ids)
    out = []
    for i in range(count):
        if i % HISTORY_EVERY == HISTORY_EVERY - 1:
            items = rng.choice(rec.data.item_ids, HISTORY_LENGTH, replace=False)
            out.append({"history": items.tolist()})
        else:
            out.append({"user_id": str(users[i % users.size])})
    return out


def run_load(
    send: Callable[[int, dict[str, Any]], None],
    bodies: list[dict[str, Any]],
    clients: int,
    seconds: float,
) -> dict[str, float]:
    """Sends `bodies` from `clients` threads until all are sent or `seconds` have passed.

    Args:
      send: (client number, body) -> None; raises on a failed request.
      bodies: the requests, taken in order by whichever client is free.
      clients: concurrent senders.
      seconds: the time bound.

    Returns:
      {"requests", "p50 ms", "p99 ms", "req/s"}.
    """
    lock = threading.Lock()
    next_index = [0]
    latencies: list[float] = []
    errors: list[BaseException] = []
    deadline = time.perf_counter() + seconds

    def client(number: int) -> None:
        while time.perf_counter() < deadline:
            with lock:
                index = next_index[0]
                next_index[0] += 1
            if index >= len(bodies):
                return
            start = time.perf_counter()
            try:
                send(number, bodies[index])
            except BaseException as e:  # reported after the load, with the request
                errors.append(e)
                return
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed; the first: {errors[0]!r}")
    ms = np.asarray(latencies) * 1e3
    return {
        "requests": len(latencies),
        "p50 ms": float(np.percentile(ms, 50)),
        "p99 ms": float(np.percentile(ms, 99)),
        "req/s": len(latencies) / wall,
    }


def in_process(rec: Recommender, k: int) -> Callable[[int, dict[str, Any]], None]:
    def send(_: int, body: dict[str, Any]) -> None:
        rec.recommend(user=body.get("user_id"), history=body.get("history"), k=k)

    return send


def over_http(url: str, clients: int, k: int) -> tuple[Callable[[int, dict[str, Any]], None], Any]:
    """A sender with one keep-alive connection per client, and a function that closes them."""
    host, port = url.removeprefix("http://").split(":")
    connections = [http.client.HTTPConnection(host, int(port), timeout=60) for _ in range(clients)]

    def send(number: int, body: dict[str, Any]) -> None:
        conn = connections[number]
        conn.request(
            "POST",
            "/recommend",
            body=json.dumps({**body, "k": k}),
            headers={"Content-Type": "application/json"},
        )
        answer = conn.getresponse()
        payload = answer.read()
        if answer.status != 200:
            raise RuntimeError(f"HTTP {answer.status}: {payload[:200]!r}")

    def close() -> None:
        for conn in connections:
            conn.close()

    return send, close


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="", help="xDeepFM run directory")
    parser.add_argument("--ranker_workdir", default="", help="trained ranker run directory")
    parser.add_argument("--ease_quota", type=int, default=0, help="EASE recall candidates")
    parser.add_argument("--bert4rec_workdir", default="", help="BERT4Rec run directory")
    parser.add_argument("--requests", type=int, default=400, help="requests per load")
    parser.add_argument("--seconds", type=float, default=60.0, help="time bound per load")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--k", type=int, default=10, help="list length")
    parser.add_argument("--seed", type=int, default=0, help="seed of the request mix")
    args = parser.parse_args()
    if bool(args.workdir) == bool(args.ranker_workdir):
        parser.error("give one ranking model: --workdir (xDeepFM) or --ranker_workdir")

    from shortrec_jax.pipeline.service import background_server, create_app

    rec = Recommender.from_runs(
        args.workdir or None,
        sequence_workdir=args.bert4rec_workdir or None,
        ranker_workdir=args.ranker_workdir or None,
        config=PipelineConfig.from_dict({"recall": {"ease_quota": args.ease_quota}}),
    )
    app = create_app(rec)  # compiles the models
    bodies = request_mix(rec, args.requests, args.seed)
    rows = []
    for clients in (1, args.clients):
        result = run_load(in_process(rec, args.k), bodies, clients, args.seconds)
        rows.append({"path": "recommend() in process", "clients": clients, **result})
    with background_server(app) as url:
        for clients in (1, args.clients):
            send, close = over_http(url, clients, args.k)
            try:
                result = run_load(send, bodies, clients, args.seconds)
            finally:
                close()
            rows.append({"path": "POST /recommend (HTTP)", "clients": clients, **result})
    device = device_description()
    sizes = [
        len(rec.recall(rec.resolve(b.get("user_id"), b.get("history")).recall)) for b in bodies
    ]
    print_table(
        f"Recommender latency, k={args.k}, stages {rec.config.stages}, recallers "
        f"{', '.join(rec.recallers)}; {np.mean(sizes):.0f} candidates per request on average; "
        f"{rec.data.num_items:,} items; {device['backend']} ({platform.processor() or 'CPU'}), "
        f"jax {device['jax']}, commit {git_commit()}",
        rows,
        ["path", "clients", "requests", "p50 ms", "p99 ms", "req/s"],
    )
    print(f"\ncompiled shapes per model after the loads: {rec.compilations()}")


if __name__ == "__main__":
    main()
