"""A lean HTTP/1.1 client for load: one keep-alive connection per simulated user, a request written
and its response read with asyncio streams, nothing else.

`make bench-load` runs its clients on the same two cores as the server. httpx spent a few ms of
the client process's CPU per request, and at 128 users (most of them refused and asking again)
the client itself queued for the CPU: a refusal the server decided in microseconds measured
seconds. This client spends tens of microseconds per request, so what a level measures is the
server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Connection:
    """One keep-alive connection to `base_url` (http only), opened on first use and after a close."""

    def __init__(self, base_url: str) -> None:
        url = urlsplit(base_url)
        if url.scheme != "http" or url.hostname is None:
            raise ValueError(f"an http://host:port URL, not {base_url!r}")
        self.host, self.port = url.hostname, url.port or 80
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post_json(self, path: str, payload: Any, headers: dict[str, str]) -> Reply:
        body = json.dumps(payload).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        )
        try:
            if self._writer is None:
                self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
            assert self._reader is not None
            self._writer.write(head.encode() + body)
            await self._writer.drain()
            reply = await _read_reply(self._reader)
        except BaseException:
            await self.close()
            raise
        if reply.headers.get("connection", "").lower() == "close":
            await self.close()
        return reply

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):  # closed already: nothing to wait for
                await writer.wait_closed()


async def _read_reply(reader: asyncio.StreamReader) -> Reply:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionResetError("the server closed the connection")
    status = int(status_line.split(b" ", 2)[1])
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while size := int((await reader.readline()).split(b";", 1)[0], 16):
            body += await reader.readexactly(size)
            await reader.readline()
        await reader.readline()  # the blank line after the last chunk
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Reply(status=status, headers=headers, body=body)
