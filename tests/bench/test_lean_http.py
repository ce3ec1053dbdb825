"""The load client's HTTP: a keep-alive POST with a JSON body, a reply by length or in chunks, and
a connection the server closes opened again."""

from __future__ import annotations

import asyncio
import json

from bench.lean_http import Connection

REPLIES = [
    b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{"ok": true}',
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
    b'4\r\n{"a"\r\n3\r\n: 1\r\n1\r\n}\r\n0\r\n\r\n',
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
]


async def test_posts_json_reads_both_framings_and_reconnects_after_a_close() -> None:
    seen: list[bytes] = []
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(int(h.split(b":")[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length"))
            seen.append(head + await reader.readexactly(length))
            writer.write(REPLIES[len(seen) - 1] if len(seen) <= len(REPLIES) else REPLIES[0])
            await writer.drain()
            if b"Connection: close" in REPLIES[min(len(seen), len(REPLIES)) - 1]:
                writer.close()
                return

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    conn = Connection(f"http://127.0.0.1:{port}")
    first = await conn.post_json("/v1/query", {"question": "q?"}, {"Authorization": "Bearer k"})
    assert first.status == 200 and first.json() == {"ok": True}
    assert b"POST /v1/query HTTP/1.1" in seen[0] and b"Authorization: Bearer k" in seen[0]
    assert json.loads(seen[0].split(b"\r\n\r\n", 1)[1]) == {"question": "q?"}
    refused = await conn.post_json("/v1/query", {}, {})
    assert refused.status == 503 and refused.headers["retry-after"] == "1" and refused.json() == {"a": 1}
    closed = await conn.post_json("/v1/query", {}, {})
    assert closed.status == 200 and closed.json() == {}
    again = await conn.post_json("/v1/query", {}, {})  # the server closed: a new connection
    assert again.status == 200 and connections == 2
    await conn.close()
    server.close()
