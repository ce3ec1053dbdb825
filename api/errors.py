"""Every HTTP error is JSON: {"error": {"code", "message", "request_id"}}, with a stable code."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from keel.errors import KeelError, RedisUnavailable

log = logging.getLogger("keel.api")

REQUEST_ID_HEADER = "X-Request-ID"

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


def error_response(request: Request, status: int, code: str, message: str) -> JSONResponse:
    rid = request_id(request)
    return JSONResponse(
        status_code=status,
        content={"error": {"code": code, "message": message, "request_id": rid}},
        headers={REQUEST_ID_HEADER: rid},
    )


async def request_id_middleware(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    # Accept a caller's id only when it is short and printable, so it is safe in logs and keys.
    rid = incoming if 0 < len(incoming) <= 128 and incoming.isprintable() else uuid.uuid4().hex
    request.state.request_id = rid
    response = await call_next(request)
    response.headers[REQUEST_ID_HEADER] = rid
    return response


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(KeelError)
    async def _keel(request: Request, exc: KeelError) -> JSONResponse:
        return error_response(request, exc.http_status, exc.code, exc.message)

    @app.exception_handler(redis.exceptions.ConnectionError)
    @app.exception_handler(redis.exceptions.TimeoutError)
    async def _redis(request: Request, exc: Exception) -> JSONResponse:
        err = RedisUnavailable(f"Redis is unreachable: {exc}")
        return error_response(request, err.http_status, err.code, err.message)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",))
            parts.append(f"{where}: {err.get('msg')}")
        return error_response(request, 422, "invalid_request", "; ".join(parts) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "http_error")
        return error_response(request, exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error (request %s)", request_id(request))
        return error_response(request, 500, "internal_error", "an unexpected error occurred; quote the request id")
