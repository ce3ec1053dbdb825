"""A query's event stream in Redis: the worker writes, the API relays it as Server-Sent Events.

Events: `sources` (after context packing: the passages the answer will cite), `token` (a piece
of the answer), `reset` (a provider failed mid-stream; the client drops what it has shown, the next
link starts over), `done` (written by the API with the final answer). The stream expires with the
request's state.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import redis

from stores.keys import QUERY_STATE_TTL_S, query_stream_key

MAX_EVENTS = 10_000


class EventSink:
    def __init__(self, client: redis.Redis, tenant: str, request_id: str) -> None:
        self.r = client
        self.key = query_stream_key(tenant, request_id)

    def emit(self, event: str, data: Any) -> None:
        pipe = self.r.pipeline()
        pipe.xadd(self.key, {"event": event, "data": json.dumps(data)}, maxlen=MAX_EVENTS, approximate=True)
        pipe.expire(self.key, QUERY_STATE_TTL_S)
        pipe.execute()

    def token(self, text: str) -> None:
        self.emit("token", text)

    def reset(self, reason: str) -> None:
        self.emit("reset", reason)


def read_events(
    client: redis.Redis, tenant: str, request_id: str, last_id: str = "0", block_ms: int = 250
) -> Iterator[tuple[str, str, Any]]:
    """(id, event, data) after `last_id`; waits up to `block_ms` for new ones."""
    key = query_stream_key(tenant, request_id)
    reply: Any = client.xread({key: last_id}, block=block_ms, count=500)
    for _, entries in reply or []:
        for entry_id, fields in entries:
            yield entry_id, fields.get("event", ""), json.loads(fields.get("data", "null"))
