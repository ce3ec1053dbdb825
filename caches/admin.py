"""What an operator sees of a tenant's answer cache, and how it empties it."""

from __future__ import annotations

from typing import Any

import redis

from stores.keys import cache_lru_key, cache_stats_key


def stats(r: redis.Redis, tenant: str) -> dict[str, Any]:
    """Entries, their bytes, and the counters (hits and misses by layer, stores, evictions)."""
    entries = [str(k) for k in r.zrange(cache_lru_key(tenant), 0, -1)]
    pipe = r.pipeline(transaction=False)
    for key in entries:
        pipe.strlen(key)
    sizes = [int(n) for n in pipe.execute()] if entries else []
    counters = {k: int(v) for k, v in r.hgetall(cache_stats_key(tenant)).items()}
    live = sum(1 for n in sizes if n)
    return {"tenant": tenant, "entries": live, "bytes": sum(sizes), "counters": counters}


def purge(r: redis.Redis, tenant: str) -> int:
    """Remove every cache entry of the tenant (its counters stay); returns how many keys went."""
    gone = 0
    keys = [str(k) for k in r.scan_iter(match=f"keel:cache:{tenant}:*", count=1000) if k != cache_stats_key(tenant)]
    for start in range(0, len(keys), 500):
        gone += int(r.unlink(*keys[start : start + 500]))
    r.hincrby(cache_stats_key(tenant), "purged", 1)
    return gone
