"""What an operator sees of a tenant's answer cache, and how it empties it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import redis
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from stores.keys import TENANTS_KEY, cache_lru_key, cache_pattern, cache_stats_key


def stats(r: redis.Redis, tenant: str) -> dict[str, Any]:
    """Entries, their bytes (kept by the storage scripts), and the counters (hits and misses by
    layer, stores, evictions, swept entries of older generations, entries flagged as wrong)."""
    pipe = r.pipeline(transaction=False)
    pipe.zcard(cache_lru_key(tenant))
    pipe.hgetall(cache_stats_key(tenant))
    entries, raw = pipe.execute()
    counters = {k: int(v) for k, v in raw.items()}
    return {"tenant": tenant, "entries": int(entries), "bytes": counters.pop("bytes", 0), "counters": counters}


def purge(r: redis.Redis, tenant: str) -> int:
    """Remove every cache entry of the tenant (its counters stay); returns how many keys went."""
    gone = 0
    keys = [str(k) for k in r.scan_iter(match=cache_pattern(tenant), count=1000) if k != cache_stats_key(tenant)]
    for start in range(0, len(keys), 500):
        gone += int(r.unlink(*keys[start : start + 500]))
    pipe = r.pipeline()
    pipe.hincrby(cache_stats_key(tenant), "purged", 1)
    pipe.hset(cache_stats_key(tenant), "bytes", 0)
    pipe.execute()
    return gone


class CacheMemory(Collector):
    """Each tenant's cache entries and bytes, read from Redis when the metrics are scraped (two
    reads a tenant: the numbers are kept as entries come and go)."""

    def __init__(self, r: redis.Redis) -> None:
        self.r = r

    def collect(self) -> Iterable[GaugeMetricFamily]:
        entries = GaugeMetricFamily("keel_cache_entries", "Answer-cache entries per tenant", labels=["tenant"])
        size = GaugeMetricFamily("keel_cache_bytes", "Answer-cache bytes per tenant", labels=["tenant"])
        try:
            tenants = sorted(str(t) for t in self.r.smembers(TENANTS_KEY))
            pipe = self.r.pipeline(transaction=False)
            for tenant in tenants:
                pipe.zcard(cache_lru_key(tenant))
                pipe.hget(cache_stats_key(tenant), "bytes")
            replies = pipe.execute() if tenants else []
        except redis.exceptions.RedisError:
            return  # nothing to report while Redis is down
        for i, tenant in enumerate(tenants):
            entries.add_metric([tenant], int(replies[2 * i]))
            size.add_metric([tenant], int(replies[2 * i + 1] or 0))
        yield entries
        yield size
