"""The recommender as an HTTP service (FastAPI on uvicorn; the `serve` extra).

  python -m shortrec_jax.pipeline.service --ranker_workdir=runs/ranker_ml100k \
      [--sequence_workdirs=runs/bert4rec_ml100k,runs/sasrec_ml100k] \
      [--pipeline.recall.ease_quota=100] [--host=127.0.0.1] [--port=8000]

The ranking model is a trained ranker (`--ranker_workdir`, written by
`python -m shortrec_jax.pipeline.train_ranker`) or an xDeepFM run (`--workdir`); sequence runs
(BERT4Rec, SASRec) are recallers (`--bert4rec_workdir` is one more such run).

Endpoints:
  POST /recommend   {"user_id": "196"} or {"history": ["242", "302"]}, with optional "k"
                    (default 10, at most the pipeline's max_k) and "demographics"
                    ({"age": "24", "gender": "F", ...}: the ranking model's user columns).
                    Answers {"user_id", "known_user", "k", "stages", "ranker", "recallers",
                    "items"}, each item with its title, final score, every stage's score and
                    the recallers that proposed it; "ranker" names the ranking model
                    ("trained", "xdeepfm", or null without one).
  GET  /healthz     {"status": "ok", ...} once the models are loaded and compiled.

Bad requests are answered 400 (malformed JSON), 408 (the body did not arrive within the read
timeout, e.g. shorter than its Content-Length), 413 (a body over the size limit) or 422
(well-formed but invalid: unknown fields, a k outside [1, max_k], both or neither of user_id
and history, item ids the catalogue does not know, unknown demographic fields, an id that is
not text of at most MAX_ID_CHARS characters without control characters or lone surrogates,
an integer id outside int64), always as {"detail": "<what is wrong>"} (plus "errors", the
field-level list, for schema errors). Answers are ASCII JSON, so no input can make the
encoding of an answer fail. `--docs=False` switches off /docs, /redoc and /openapi.json.
The models load and compile once, before the first request; requests run in the server's
thread pool against that one `Recommender`. The service reads no file paths from requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
import unicodedata
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, StrictStr

from shortrec_jax.pipeline.config import DEFAULT_K
from shortrec_jax.pipeline.recommender import Recommender

# The longest id a request may send (MovieLens ids have at most 6 characters).
MAX_ID_CHARS = 256
# Defaults of the request limits (both configurable in `create_app` and on the command line):
# a body at most this large (a full 1,000-item history of long ids fits), read within this
# many seconds.
MAX_BODY_BYTES = 1 << 20
READ_TIMEOUT_S = 10.0
# Unicode categories an id may not hold: control characters and lone surrogates, which
# cannot be encoded as UTF-8 and so could be neither logged nor echoed.
_REFUSED_CATEGORIES = ("Cc", "Cs")


def _check_id_text(value: str) -> str:
    if len(value) > MAX_ID_CHARS:
        raise ValueError(f"an id has at most {MAX_ID_CHARS} characters, got {len(value)}")
    for char in value:
        if unicodedata.category(char) in _REFUSED_CATEGORIES:
            raise ValueError(
                f"an id may not hold control characters or lone surrogates (U+{ord(char):04X})"
            )
    return value


IdText = Annotated[StrictStr, AfterValidator(_check_id_text)]
# Ids that are JSON numbers stay within int64, so that their text is short.
IdNumber = Annotated[StrictInt, Field(ge=-(2**63), le=2**63 - 1)]
RawId = IdText | IdNumber


class RecommendRequest(BaseModel):
    """The body of POST /recommend; any other field is an error."""

    model_config = ConfigDict(extra="forbid")

    user_id: RawId | None = Field(default=None, description="A raw user id (new ones are fine).")
    history: list[RawId] | None = Field(
        default=None, description="Raw item ids, oldest first: the live history."
    )
    k: StrictInt = Field(default=DEFAULT_K, description="List length, 1..max_k.")
    demographics: dict[IdText, RawId] | None = Field(
        default=None, description="User columns of the ranking model, e.g. age, gender."
    )


# The tags pydantic puts in an error's location for each member of the id union.
_UNION_TAGS = ("str", "int", "function-after[", "constrained-int")
# Error kinds that say what is wrong with an id of the right type (its own checks).
_ID_CHECKS = ("value_error", "greater_than_equal", "less_than_equal")


def _describe(error: dict[str, Any]) -> tuple[str, str]:
    """(where, one readable sentence) for one pydantic error."""
    parts = [str(part) for part in error.get("loc", ()) if part != "body"]
    loc = [part for part in parts if not part.startswith(_UNION_TAGS)]
    where = ".".join(loc)
    kind = error.get("type", "")
    if kind in _ID_CHECKS:
        return where, f"{where}: {error.get('msg', 'invalid')}"
    if len(loc) < len(parts):
        # An id that is neither of its union's members: one sentence, not one per member.
        return where, f"{where}: must be a string or an integer id"
    if kind == "extra_forbidden":
        allowed = ", ".join(RecommendRequest.model_fields)
        return where, f"unknown field {where!r}; allowed fields: {allowed}"
    if not loc:
        return where, "the body must be a JSON object (Content-Type: application/json)"
    return where, f"{where}: {error.get('msg', 'invalid')}"


def _detail(errors: list[dict[str, Any]]) -> str:
    """The sentences of all errors, once each; where an id failed its own checks, the other
    union member's type error at the same place is left out."""
    checked = {_describe(e)[0] for e in errors if e.get("type") in _ID_CHECKS}
    sentences = [
        sentence
        for e in errors
        for where, sentence in [_describe(e)]
        if e.get("type") in _ID_CHECKS or where not in checked
    ]
    return "; ".join(dict.fromkeys(sentences))


class AsciiJSONResponse(JSONResponse):
    """JSON with every non-ASCII character escaped: a string no UTF-8 encoder accepts (a lone
    surrogate echoed in a message) is still a valid answer, never a 500."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False).encode("ascii")


Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class RequestLimits:
    """ASGI middleware: reads each request body whole, at most `max_body_bytes` within
    `read_timeout_s` seconds, before the app sees it; else answers 413 or 408 and drops it.

    uvicorn itself waits for a body as long as the client keeps the connection open (a body
    shorter than its Content-Length held a thread forever) and accepts any size.
    """

    def __init__(self, app: Any, *, max_body_bytes: int, read_timeout_s: float) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.read_timeout_s = read_timeout_s

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        declared = headers.get(b"content-length", b"").decode("latin-1")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._refuse(scope, receive, send, 413, self._too_large())
            return
        body = bytearray()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.read_timeout_s
        more = True
        while more:
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.0))
            except TimeoutError:
                detail = f"the request body did not arrive within {self.read_timeout_s:g} s"
                await self._refuse(scope, receive, send, 408, detail)
                return
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body_bytes:
                await self._refuse(scope, receive, send, 413, self._too_large())
                return
        replayed = False

        async def replay() -> MutableMapping[str, Any]:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    def _too_large(self) -> str:
        return f"the request body is larger than {self.max_body_bytes} bytes"

    @staticmethod
    async def _refuse(
        scope: MutableMapping[str, Any], receive: Receive, send: Send, status: int, detail: str
    ) -> None:
        # "Connection: close": the rest of the body is never read, so the connection cannot
        # carry another request.
        response = AsciiJSONResponse(
            {"detail": detail}, status_code=status, headers={"Connection": "close"}
        )
        await response(scope, receive, send)


def create_app(
    recommender: Recommender,
    *,
    max_body_bytes: int = MAX_BODY_BYTES,
    read_timeout_s: float = READ_TIMEOUT_S,
    docs: bool = True,
) -> FastAPI:
    """The ASGI app around a built recommender; compiles its models before returning.

    Args:
      recommender: the built pipeline.
      max_body_bytes: larger request bodies are answered 413.
      read_timeout_s: a body not received within this many seconds is answered 408.
      docs: serve /docs, /redoc and /openapi.json (switch off in production).
    """
    if max_body_bytes < 1 or not read_timeout_s > 0:
        raise ValueError(
            f"max_body_bytes={max_body_bytes} must be >= 1 and read_timeout_s={read_timeout_s} > 0"
        )
    recommender.warm_up()
    config = recommender.config
    ranker = recommender.ranking_model
    app = FastAPI(
        title="shortrec-jax recommender",
        description="recall -> ranking -> reranking, with every stage's score",
        default_response_class=AsciiJSONResponse,
        **({} if docs else {"docs_url": None, "redoc_url": None, "openapi_url": None}),
    )
    app.add_middleware(RequestLimits, max_body_bytes=max_body_bytes, read_timeout_s=read_timeout_s)

    @app.exception_handler(HTTPException)
    async def refused(request: Request, exc: HTTPException) -> JSONResponse:
        return AsciiJSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        malformed = [e for e in errors if e.get("type") == "json_invalid"]
        if malformed:
            first = malformed[0]
            reason = first.get("ctx", {}).get("error", "cannot be parsed")
            where = f" at character {first['loc'][-1]}" if len(first["loc"]) > 1 else ""
            detail = f"malformed JSON{where}: {reason}"
            return AsciiJSONResponse(status_code=400, content={"detail": detail})
        detail = _detail(errors)
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in errors]
        return AsciiJSONResponse(status_code=422, content={"detail": detail, "errors": errors})

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {
            "status": "ok",
            "users": recommender.data.num_users,
            "items": recommender.data.num_items,
            "stages": config.stages,
            "ranker": ranker,
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
            "ranker": ranker,
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

    flags.DEFINE_string("workdir", "", "xDeepFM run directory (the ranking model).")
    flags.DEFINE_string("ranker_workdir", "", "Trained ranker run directory (the ranking model).")
    flags.DEFINE_string("bert4rec_workdir", "", "BERT4Rec run directory (optional).")
    flags.DEFINE_list("sequence_workdirs", [], "Sequence run directories (BERT4Rec, SASRec).")
    flags.DEFINE_string("host", "127.0.0.1", "Address to listen on.")
    flags.DEFINE_integer("port", 8000, "Port to listen on.")
    flags.DEFINE_enum("log_level", "info", ["critical", "error", "warning", "info"], "uvicorn.")
    flags.DEFINE_integer("max_body_bytes", MAX_BODY_BYTES, "Larger request bodies get a 413.")
    flags.DEFINE_float("read_timeout_s", READ_TIMEOUT_S, "Bodies slower than this get a 408.")
    flags.DEFINE_boolean("docs", True, "Serve /docs, /redoc and /openapi.json.")
    config_flags.DEFINE_config_dict("pipeline", config_dict(), "Pipeline knobs.")


def main() -> None:
    """Loads the runs once, then serves until stopped."""
    import uvicorn
    from absl import app, flags

    from shortrec_jax.pipeline.config import PipelineConfig

    values = flags.FLAGS
    if bool(values.workdir) == bool(values.ranker_workdir):
        raise app.UsageError("give one ranking model: --workdir (xDeepFM) or --ranker_workdir")
    recommender = Recommender.from_runs(
        values.workdir or None,
        sequence_workdir=[p for p in [values.bert4rec_workdir, *values.sequence_workdirs] if p],
        ranker_workdir=values.ranker_workdir or None,
        config=PipelineConfig.from_dict(values.pipeline),
    )
    app_ = create_app(
        recommender,
        max_body_bytes=values.max_body_bytes,
        read_timeout_s=values.read_timeout_s,
        docs=values.docs,
    )
    uvicorn.run(app_, host=values.host, port=values.port, log_level=values.log_level)


if __name__ == "__main__":
    from shortrec_jax import cli

    define_flags()
    cli.run(main)
