"""The recommender as an HTTP service (FastAPI on uvicorn; the `serve` extra).

  python -m shortrec_jax.pipeline.service --workdir=runs/xdeepfm_ml100k \
      [--bert4rec_workdir=runs/bert4rec_ml100k] [--host=127.0.0.1] [--port=8000]

Endpoints:
  POST /recommend   {"user_id": "196"} or {"history": ["242", "302"]}, with optional "k"
                    (default 10, at most the pipeline's max_k) and "demographics"
                    ({"age": "24", "gender": "F", ...}: the ranking model's user columns).
                    Answers {"user_id", "known_user", "k", "stages", "recallers", "items"},
                    each item with its title, final score, every stage's score and the
                    recallers that proposed it.
  GET  /healthz     {"status": "ok", ...} once the models are loaded and compiled.

Bad requests are answered 400 (malformed JSON) or 422 (well-formed but invalid: unknown
fields, a k outside [1, max_k], both or neither of user_id and history, item ids the catalogue
does not know, unknown demographic fields), always as {"detail": "<what is wrong>"} (plus
"errors", the field-level list, for schema errors). The models load and compile once, before
the first request; requests run in the server's thread pool against that one `Recommender`.
The service reads no file paths from requests.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from shortrec_jax.pipeline.config import DEFAULT_K
from shortrec_jax.pipeline.recommender import Recommender

RawId = StrictStr | StrictInt


class RecommendRequest(BaseModel):
    """The body of POST /recommend; any other field is an error."""

    model_config = ConfigDict(extra="forbid")

    user_id: RawId | None = Field(default=None, description="A raw user id (new ones are fine).")
    history: list[RawId] | None = Field(
        default=None, description="Raw item ids, oldest first: the live history."
    )
    k: StrictInt = Field(default=DEFAULT_K, description="List length, 1..max_k.")
    demographics: dict[str, RawId] | None = Field(
        default=None, description="User columns of the ranking model, e.g. age, gender."
    )


# The tags pydantic puts at the end of an error's location for each member of a union.
_UNION_TAGS = {"str": "a string", "int": "an integer"}


def _describe(error: dict[str, Any]) -> str:
    """One readable sentence for one pydantic error."""
    loc = [str(part) for part in error.get("loc", ()) if part != "body"]
    kind = error.get("type", "")
    if loc and loc[-1] in _UNION_TAGS:
        # An id that is neither of its union's members: one sentence, not one per member.
        return f"{'.'.join(loc[:-1])}: must be a string or an integer id"
    where = ".".join(loc)
    if kind == "extra_forbidden":
        allowed = ", ".join(RecommendRequest.model_fields)
        return f"unknown field {where!r}; allowed fields: {allowed}"
    if not loc:
        return "the body must be a JSON object (Content-Type: application/json)"
    return f"{where}: {error.get('msg', 'invalid')}"


def create_app(recommender: Recommender) -> FastAPI:
    """The ASGI app around a built recommender; compiles its models before returning."""
    recommender.warm_up()
    config = recommender.config
    app = FastAPI(
        title="shortrec-jax recommender",
        description="recall -> ranking -> reranking, with every stage's score",
    )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        malformed = [e for e in errors if e.get("type") == "json_invalid"]
        if malformed:
            first = malformed[0]
            reason = first.get("ctx", {}).get("error", "cannot be parsed")
            where = f" at character {first['loc'][-1]}" if len(first["loc"]) > 1 else ""
            detail = f"malformed JSON{where}: {reason}"
            return JSONResponse(status_code=400, content={"detail": detail})
        detail = "; ".join(dict.fromkeys(_describe(e) for e in errors))
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in errors]
        return JSONResponse(status_code=422, content={"detail": detail, "errors": errors})

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {
            "status": "ok",
            "users": recommender.data.num_users,
            "items": recommender.data.num_items,
            "stages": config.stages,
            "recallers": list(recommender.recallers),
            "demographic_fields": list(recommender.demographic_fields),
            "max_k": config.max_k,
        }

    # A plain function: FastAPI runs it in its thread pool, so slow requests do not block the
    # event loop and several run at once (the recommender is thread-safe).
    @app.post("/recommend")
    def recommend(body: RecommendRequest) -> dict[str, Any]:
        if (body.user_id is None) == (body.history is None):
            raise HTTPException(422, "give exactly one of user_id and history")
        if not 1 <= body.k <= config.max_k:
            raise HTTPException(422, f"k={body.k} must be in [1, {config.max_k}]")
        try:
            recs = recommender.recommend(body.user_id, body.history, body.k, body.demographics)
        except ValueError as e:  # unknown item ids or demographic fields, too long a history
            raise HTTPException(422, str(e)) from None
        return {
            "user_id": None if body.user_id is None else str(body.user_id),
            "known_user": body.user_id is not None and recommender.knows_user(body.user_id),
            "k": body.k,
            "stages": config.stages,
            "recallers": list(recommender.recallers),
            "items": [r.to_dict() for r in recs],
        }

    return app


@contextlib.contextmanager
def background_server(
    app: FastAPI, host: str = "127.0.0.1", port: int = 0, *, start_timeout: float = 60.0
) -> Iterator[str]:
    """Serves `app` with uvicorn in a background thread (tests, benchmarks).

    The socket is bound before the server starts, so port 0 picks a free port without a race.

    Args:
      app: the ASGI app.
      host, port: where to listen (port 0: any free port).
      start_timeout: seconds to wait for the server to accept connections.

    Yields:
      The base URL, e.g. "http://127.0.0.1:54321"; the server stops when the block exits.
    """
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + start_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start on {host}:{port} in time")
            time.sleep(0.01)
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=start_timeout)
        sock.close()


def define_flags() -> None:
    """The command-line flags (defined only when run as a program)."""
    from absl import flags
    from ml_collections import config_flags

    from shortrec_jax.pipeline.config import config_dict

    flags.DEFINE_string("workdir", None, "xDeepFM run directory.", required=True)
    flags.DEFINE_string("bert4rec_workdir", "", "BERT4Rec run directory (optional).")
    flags.DEFINE_string("host", "127.0.0.1", "Address to listen on.")
    flags.DEFINE_integer("port", 8000, "Port to listen on.")
    flags.DEFINE_enum("log_level", "info", ["critical", "error", "warning", "info"], "uvicorn.")
    config_flags.DEFINE_config_dict("pipeline", config_dict(), "Pipeline knobs.")


def main(argv: list[str]) -> None:
    """Loads the runs once, then serves until stopped."""
    import uvicorn
    from absl import app, flags, logging

    from shortrec_jax.pipeline.config import PipelineConfig

    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    values = flags.FLAGS
    if not values["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    recommender = Recommender.from_runs(
        values.workdir,
        sequence_workdir=values.bert4rec_workdir or None,
        config=PipelineConfig.from_dict(values.pipeline),
    )
    uvicorn.run(
        create_app(recommender), host=values.host, port=values.port, log_level=values.log_level
    )


if __name__ == "__main__":
    from shortrec_jax import cli

    define_flags()
    cli.run(main)
