"""Build the app: clients open in the lifespan and close there; nothing connects at import."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from starlette.types import Receive, Scope, Send
from temporalio.client import Client
from temporalio.service import RPCError

from api import mcp
from api.body_limit import MULTIPART_SLACK, BodyLimit
from api.deps import question_redactor
from api.docs import install_docs
from api.errors import ERROR_TYPES, REQUEST_ID_HEADER, RequestIds, install_error_handlers, new_request_id
from api.mcp import build_mcp, mounted
from api.metrics import CountRequests
from api.routers import admin, codec, conversations, documents, feedback, jobs, openai_compat, query
from gateway.admission import Admission
from index.active import Indexes
from keel import offline  # noqa: F401 - before any library that might reach for the network
from keel.config import get_settings
from keel.errors import Overloaded, RedisUnavailable, TemporalUnavailable
from observability import metrics
from observability.tracing import setup_tracing
from stores import redis as redis_store
from stores.blobs import BlobStore
from temporal.client import connect

log = logging.getLogger("keel.api")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    setup_tracing("keel-api", settings.data_dir)
    app.state.redis = redis_store.connect(settings)
    app.state.blobs = BlobStore(settings.blob_dir)
    await asyncio.to_thread(question_redactor, app, settings)  # loaded now, not on the first question
    if getattr(app.state, "temporal", None) is None:  # hosted with the workers, the app has theirs
        try:
            app.state.temporal = await connect(settings)
        except TemporalUnavailable as exc:  # serve anyway: endpoints answer 503 with the reason
            log.error("%s", exc.message)
            app.state.temporal = None
    async with app.state.mcp.session_manager.run():  # the MCP transport's task group
        yield
    app.state.redis.close()


QUERY_ROUTES = ("/v1/query", "/v1/query/stream")


class KeelApp(FastAPI):
    """The app, with load shedding in front of everything else it runs.

    A query the process has no room for is refused before its body is read, its key checked, a
    span started or a middleware run: under overload that is most requests, and each must cost
    next to nothing. As a middleware it cost a few ms of the event loop per refusal, and at 128
    clients the refusals themselves ate the CPU the admitted queries needed."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in QUERY_ROUTES:
            admission: Admission | None = getattr(self.state, "admission", None)  # made by the first query
            if admission is not None:
                async with admission.door() as why:
                    if why is not None:
                        await _refuse(admission.refuse_early(why), scope["path"], scope, receive, send)
                    else:
                        await super().__call__(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


async def _refuse(exc: Overloaded, path: str, scope: Scope, receive: Receive, send: Send) -> None:
    rid = new_request_id()
    retry = str(max(1, math.ceil(exc.retry_after_s or 1)))
    body = {
        "code": exc.code,
        "message": exc.message,
        "type": ERROR_TYPES.get(503, "server_error"),
        "param": None,
        "request_id": rid,
    }
    response = JSONResponse({"error": body}, 503, headers={REQUEST_ID_HEADER: rid, "Retry-After": retry})
    metrics.HTTP_REQUESTS.labels(route=path, method="POST", status="503", tenant="-").inc()
    await response(scope, receive, send)


READY_TIMEOUT_S = 2.0  # each dependency's answer to a readiness check


def create_app(temporal: Client | None = None, indexes: Indexes | None = None) -> FastAPI:
    """The app; `temporal` is the client of workers in the same process (infra.server), whose
    queries then start eagerly on them. Without one, the lifespan connects its own. `indexes`
    are theirs too: with them the API keeps paraphrases of answered questions (the semantic cache)."""
    settings = get_settings()
    docs = "/openapi.json" if settings.api_docs else None
    app = KeelApp(title="Keel", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=docs)
    app.state.temporal = temporal
    app.state.indexes = indexes
    app.state.mcp = mounted(build_mcp())
    FastAPIInstrumentor.instrument_app(app)  # spans go to whichever provider is installed at start
    app.add_middleware(CountRequests)
    app.add_middleware(RequestIds)
    install_error_handlers(app)
    app.include_router(documents.router)
    app.include_router(jobs.router)
    app.include_router(query.router)
    app.include_router(openai_compat.router)
    app.include_router(conversations.router)
    app.include_router(feedback.router)
    app.include_router(admin.router)
    app.include_router(codec.router)
    app.include_router(mcp.router)
    # The Temporal UI calls /codec from its own origin; bearer keys are not ambient credentials,
    # so allowing that one origin opens nothing a key does not already open.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=[settings.temporal_ui_url],
        allow_methods=["POST"],
        allow_headers=["Authorization", "Content-Type", "X-Namespace"],
        allow_credentials=True,  # the codec session cookie (see api/routers/codec.py)
    )
    if settings.api_docs:
        install_docs(app)
    upload_limit = min(settings.max_upload_bytes, settings.max_file_bytes) + MULTIPART_SLACK
    app.add_middleware(
        BodyLimit,
        limit_for=lambda path: upload_limit if path.startswith("/v1/documents") else settings.max_json_body_bytes,
    )

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        """The process serves HTTP (liveness): nothing else is checked."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"])
    async def readyz(request: Request) -> dict[str, str]:
        """Ready to take traffic: Redis answers and Temporal's frontend says it serves, each within
        2 s; otherwise a 503 with Retry-After naming which one is away."""
        try:
            await asyncio.wait_for(asyncio.to_thread(request.app.state.redis.ping), READY_TIMEOUT_S)
        except (TimeoutError, redis.RedisError) as exc:
            raise RedisUnavailable(f"Redis does not answer: {type(exc).__name__}") from exc
        temporal: Client | None = request.app.state.temporal
        try:
            serving = temporal is not None and await asyncio.wait_for(
                temporal.service_client.check_health(), READY_TIMEOUT_S
            )
        except (TimeoutError, RPCError):
            serving = False
        if not serving:
            raise TemporalUnavailable("Temporal's frontend does not answer or is not serving")
        return {"status": "ready"}

    return app


app = create_app()
