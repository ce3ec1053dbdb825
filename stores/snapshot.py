"""Redis keys to portable records and back: what a backup holds of Keel's own state.

Each key becomes one JSON record of its type and value (and its time to live), not Redis's DUMP
blob, whose format changes between server versions: a backup taken on Valkey 9 restores into a
Redis 7 (or the other way round). Keel's keys hold text only (`stores.redis` decodes every reply).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import redis

from stores.keys import api_key_key, matches, tenant_api_keys_key, tenant_record_patterns

TYPES = ("string", "hash", "set", "zset", "list", "stream")


def tenant_keys(r: redis.Redis, tenant: str) -> Iterator[str]:
    """Every key of Keel's records of the tenant (`stores.keys.tenant_record_patterns`), and the
    record of each of its API keys."""
    for pattern in tenant_record_patterns(tenant):
        if "*" in pattern:
            yield from (str(k) for k in r.scan_iter(match=pattern, count=1000) if matches(str(k), pattern))
        else:
            yield pattern
    for key_id in sorted(r.smembers(tenant_api_keys_key(tenant))):
        yield api_key_key(str(key_id))


def dump(r: redis.Redis, keys: Iterable[str]) -> Iterator[dict[str, Any]]:
    """One record per key that exists: {"key", "type", "value", "ttl_ms"}."""
    for key in keys:
        kind = str(r.type(key))
        if kind == "none":
            continue  # gone since it was listed
        if kind not in TYPES:
            raise ValueError(f"key {key!r} is a {kind}, which a backup does not hold")
        value: Any
        if kind == "string":
            value = r.get(key)
        elif kind == "hash":
            value = r.hgetall(key)
        elif kind == "set":
            value = sorted(r.smembers(key))
        elif kind == "zset":
            pairs: Any = r.zrange(key, 0, -1, withscores=True)
            value = [[m, score] for m, score in pairs]
        elif kind == "list":
            value = r.lrange(key, 0, -1)
        else:
            entries: Any = r.xrange(key)
            value = [[entry_id, fields] for entry_id, fields in entries]
        ttl = int(r.pttl(key))
        yield {"key": key, "type": kind, "value": value, "ttl_ms": ttl if ttl > 0 else 0}


def restore(pipe: redis.client.Pipeline, record: dict[str, Any], *, replace: bool = True) -> None:
    """Queue the writes that recreate one record's key: replacing what is there, or (`replace`
    False) adding to it, for a set or hash that may already hold members."""
    key, kind, value = str(record["key"]), record["type"], record["value"]
    if replace:
        pipe.delete(key)
    if kind == "string":
        pipe.set(key, str(value))
    elif kind == "hash":
        if value:
            pipe.hset(key, mapping={str(k): str(v) for k, v in value.items()})
    elif kind == "set":
        if value:
            pipe.sadd(key, *[str(m) for m in value])
    elif kind == "zset":
        if value:
            pipe.zadd(key, {str(m): float(s) for m, s in value})
    elif kind == "list":
        if value:
            pipe.rpush(key, *[str(v) for v in value])
    elif kind == "stream":
        for entry_id, fields in value:
            pipe.xadd(key, {str(k): str(v) for k, v in fields.items()}, id=str(entry_id))
    else:
        raise ValueError(f"a record of type {kind!r} cannot be restored")
    if int(record.get("ttl_ms") or 0) > 0:
        pipe.pexpire(key, int(record["ttl_ms"]))
