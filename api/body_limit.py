"""Request bodies are refused at the limit while they stream in, never after reading them whole.

A declared Content-Length over the limit is refused before a byte is read; a body that runs past
it (chunked, or lying about its length) is cut off as soon as it does. Uploads get the upload
limit (plus room for the multipart envelope); every other route a small JSON limit.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import REQUEST_ID_HEADER, new_request_id
from keel.errors import BodyTooLarge

MULTIPART_SLACK = 64 * 1024


class BodyLimit:
    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _refuse(send, limit)
            return
        received = 0
        exceeded = started = False

        async def limited() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise BodyTooLarge(f"the request body is over the limit of {limit:,} bytes")
            return message

        async def guarded(message: Message) -> None:
            # Past the limit the answer is ours (413), whatever the app makes of the cut-off body.
            nonlocal started
            if exceeded:
                return
            started = True
            await send(message)

        try:
            await self.app(scope, limited, guarded)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await _refuse(send, limit)


async def _refuse(send: Send, limit: int) -> None:
    rid = new_request_id()
    err = BodyTooLarge(f"the request body is over the limit of {limit:,} bytes")
    body = json.dumps({"error": {"code": err.code, "message": err.message, "request_id": rid}}).encode()
    headers = [(b"content-type", b"application/json"), (REQUEST_ID_HEADER.lower().encode(), rid.encode())]
    headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": err.http_status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
