"""A query's event stream: what the worker writes is what the API relays, in order, and it expires."""

from __future__ import annotations

import uuid

import redis

from stores.keys import query_stream_key
from stores.streams import EventSink, read_events


def test_events_come_back_in_order_with_their_data_after_the_last_one_read(redis_client: redis.Redis) -> None:
    rid = uuid.uuid4().hex
    sink = EventSink(redis_client, "acme", rid)
    sink.emit("sources", [{"doc_id": "d1"}])
    sink.token("Hello")
    sink.reset("provider_failed")
    events = list(read_events(redis_client, "acme", rid, block_ms=1))
    assert [(e, d) for _, e, d in events] == [
        ("sources", [{"doc_id": "d1"}]),
        ("token", "Hello"),
        ("reset", "provider_failed"),
    ]
    after_first = list(read_events(redis_client, "acme", rid, last_id=events[0][0], block_ms=1))
    assert [e for _, e, _ in after_first] == ["token", "reset"]
    assert list(read_events(redis_client, "acme", rid, last_id=events[-1][0], block_ms=1)) == []


def test_a_stream_is_the_tenants_own_and_expires(redis_client: redis.Redis) -> None:
    rid = uuid.uuid4().hex
    EventSink(redis_client, "acme", rid).token("secret")
    assert list(read_events(redis_client, "other", rid, block_ms=1)) == []  # same request id, other tenant
    assert redis_client.ttl(query_stream_key("acme", rid)) > 0
