"""Every HTTP error is JSON: {"error": {"code", "message", "request_id"}}, with a stable code."""

from __future__ import annotations

import logging
import math
import secrets

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from opentelemetry import trace
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keel.errors import KeelError, RedisUnavailable

log = logging.getLogger("keel.api")

REQUEST_ID_HEADER = "X-Request-ID"
CORRELATION_HEADER = "X-Correlation-ID"
RETRY_AFTER_S = 5

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
}


def request_id(request: Request) -> str:
    return str(getattr(request.state, "request_id", "") or "")


def correlation_id(request: Request) -> str:
    return str(getattr(request.state, "correlation_id", "") or "")


def new_request_id() -> str:
    """The server's id for a request: it names the query's workflow, state and stream, so it is
    unguessable (128 random bits) and never the caller's."""
    return secrets.token_urlsafe(16)


ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable_error",
}


def error_response(
    request: Request, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    rid = request_id(request) or new_request_id()
    # OpenAI's error shape too (`type`, `param`), so its SDKs read Keel's errors as their own.
    body: dict[str, str | None] = {
        "code": code,
        "message": message,
        "type": ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error"),
        "param": None,
        "request_id": rid,
    }
    if correlation_id(request):
        body["correlation_id"] = correlation_id(request)
    return JSONResponse(
        status_code=status, content={"error": body}, headers={REQUEST_ID_HEADER: rid, **(headers or {})}
    )


class RequestIds:
    """Every request gets a fresh id (`request.state.request_id`, the `X-Request-ID` header of its
    response) and keeps a caller's correlation id; what the edge spent goes out as Server-Timing.
    Plain ASGI: a `BaseHTTPMiddleware` cost each request a task group and its streams."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # A caller's X-Request-ID (or X-Correlation-ID) is kept only to correlate: echoed back and
        # put on the trace, never used as a key, so a reused or guessed one cannot touch another request.
        asked = Headers(scope=scope)
        incoming = asked.get(CORRELATION_HEADER) or asked.get(REQUEST_ID_HEADER, "")
        correlation = incoming if 0 < len(incoming) <= 128 and incoming.isprintable() else ""
        rid = new_request_id()
        state = scope.setdefault("state", {})
        state["request_id"], state["correlation_id"] = rid, correlation
        trace.get_current_span().set_attributes({"keel.request_id": rid, "keel.correlation_id": correlation})

        async def send_with_ids(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                timings: dict[str, float] = state.get("timings", {})
                if timings:  # what the edge itself spent (the key check), for clients and benchmarks to see
                    headers["Server-Timing"] = ", ".join(f"{name};dur={ms:.3f}" for name, ms in timings.items())
                headers[REQUEST_ID_HEADER] = rid
                if correlation:
                    headers[CORRELATION_HEADER] = correlation
            await send(message)

        await self.app(scope, receive, send_with_ids)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(KeelError)
    async def _keel(request: Request, exc: KeelError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else {}
        headers.update(getattr(exc, "headers", {}))  # a refusal's RateLimit-Policy
        if exc.http_status in (429, 503):  # say when to come back
            headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s or RETRY_AFTER_S)))
        return error_response(request, exc.http_status, exc.code, exc.message, headers)

    @app.exception_handler(redis.exceptions.ConnectionError)
    @app.exception_handler(redis.exceptions.TimeoutError)
    async def _redis(request: Request, exc: Exception) -> JSONResponse:
        err = RedisUnavailable(f"Redis is unreachable: {exc}")
        return error_response(request, err.http_status, err.code, err.message, {"Retry-After": str(RETRY_AFTER_S)})

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",))
            parts.append(f"{where}: {err.get('msg')}")
        if any(err.get("type") == "string_unicode" for err in exc.errors()):  # e.g. a lone surrogate
            return error_response(request, 400, "invalid_text", "; ".join(parts))
        return error_response(request, 422, "invalid_request", "; ".join(parts) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "http_error")
        return error_response(request, exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error (request %s)", request_id(request))
        return error_response(request, 500, "internal_error", "an unexpected error occurred; quote the request id")
