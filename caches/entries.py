"""Cached answers in Redis, one layer's entries at a time (exact, semantic, snippet).

An entry's key is the tenant's prefix for its layer and a hash of (digest, generation): the
digest names the scope and the question (`caches.exact`, `caches.semantic` make it), the
generation is the tenant's, which every publish, replacement, deletion, migration flip and
rollback moves on, so what was cached before is unreachable at once. An answer is stored under
the generation its retrieval read, and not at all when the tenant moved on while it was answered.

A lookup is one script: the current generation, the entry (a miss is counted there), and the
record of every document the entry cites. The answer is served only if each cited version is still the published one and the
caller's groups may read it: checked at lookup, not only through the key. Entries expire after a
TTL and each tenant keeps at most `max_entries` across its layers, the least recently used going
first (never another tenant's). Deleting a document removes the entries that cite it
(`forget_document`): none of its text stays behind. Redis being down is a miss, never an error.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from caches.question import exact_key
from keel.tenancy import reader_groups
from stores.keys import (
    cache_doc_key,
    cache_generation_key,
    cache_generations_key,
    cache_lru_key,
    cache_prefix,
    cache_sizes_key,
    cache_stats_key,
    doc_key,
    generation_key,
)

log = logging.getLogger("keel.cache")

_LOOKUP = """
local gen = redis.call('GET', KEYS[1]) or '0'
local key = ARGV[1] .. redis.sha1hex(ARGV[2] .. ':' .. gen)
local entry = redis.call('GET', key)
if not entry then
  redis.call('HINCRBY', KEYS[3], ARGV[5], 1)
  return {'', gen}
end
redis.call('ZADD', KEYS[2], ARGV[3], key)
local out = {entry, gen}
for _, cited in ipairs(cjson.decode(entry)['cited']) do
  local record = redis.call('HMGET', ARGV[4] .. cited[1], 'version', 'groups')
  table.insert(out, record[1] or '')
  table.insert(out, record[2] or '')
end
return out
"""

# Every removal goes through `drop`, so the tenant's byte count stays the sum of its entries.
# KEYS: the LRU, the sizes, the stats; then the script's own.
_DROP = """
local function drop(key)
  local n = tonumber(redis.call('HGET', KEYS[2], key) or '0')
  redis.call('DEL', key)
  redis.call('ZREM', KEYS[1], key)
  redis.call('HDEL', KEYS[2], key)
  if n > 0 then redis.call('HINCRBY', KEYS[3], 'bytes', -n) end
end
"""

# KEYS[4] the tenant's generation, KEYS[5] its generations with entries. ARGV: prefix, digest,
# generation, entry, ttl ms, now, max entries, by-document prefix, by-generation prefix, sweep cap.
_STORE = (
    _DROP
    + """
local gen = redis.call('GET', KEYS[4]) or '0'
if gen ~= ARGV[3] then return {-1, 0} end
local key = ARGV[1] .. redis.sha1hex(ARGV[2] .. ':' .. gen)
drop(key)
redis.call('SET', key, ARGV[4], 'PX', ARGV[5])
redis.call('HSET', KEYS[2], key, #ARGV[4])
redis.call('HINCRBY', KEYS[3], 'bytes', #ARGV[4])
for _, cited in ipairs(cjson.decode(ARGV[4])['cited']) do
  local by_doc = ARGV[8] .. cited[1]
  redis.call('SADD', by_doc, key)
  redis.call('PEXPIRE', by_doc, ARGV[5])
end
local in_gen = ARGV[9] .. gen
redis.call('SADD', in_gen, key)
redis.call('PEXPIRE', in_gen, ARGV[5])
redis.call('ZADD', KEYS[5], gen, gen)
for _, old in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[6] - ARGV[5] / 1000)) do
  drop(old)  -- expired already: its bytes and its place go
end
local swept, cap = 0, tonumber(ARGV[10])
for _, g in ipairs(redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', '(' .. gen)) do
  for _, old in ipairs(redis.call('SPOP', ARGV[9] .. g, cap - swept)) do
    drop(old)
    swept = swept + 1
  end
  if redis.call('SCARD', ARGV[9] .. g) == 0 then redis.call('ZREM', KEYS[5], g) end
  if swept >= cap then break end
end
redis.call('ZADD', KEYS[1], ARGV[6], key)
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[7])
local evicted = 0
if over > 0 then
  for _, old in ipairs(redis.call('ZRANGE', KEYS[1], 0, over - 1)) do
    drop(old)
    evicted = evicted + 1
  end
end
return {evicted, swept}
"""
)

# ARGV: the entry keys to remove; KEYS[4] (optional): a set of entry keys, removed with them.
_FORGET = (
    _DROP
    + """
local gone = 0
local keys = ARGV
if KEYS[4] then keys = redis.call('SMEMBERS', KEYS[4]) end
for _, key in ipairs(keys) do
  if redis.call('EXISTS', key) == 1 then gone = gone + 1 end
  drop(key)
end
if KEYS[4] then redis.call('DEL', KEYS[4]) end
return gone
"""
)
SWEEP_CAP = 500  # older generations' entries removed per store, at most (a store stays short)


@dataclass(frozen=True, kw_only=True)
class Hit:
    answer: dict[str, Any]  # the stored answer (a QueryOutput's fields)
    question: str  # the (redacted) question it answered
    generation: int


class Entries:
    """One layer's entries (`layer`: exact or semantic)."""

    def __init__(self, r: redis.Redis, layer: str, *, ttl_s: float, max_entries: int) -> None:
        self.r = r
        self.layer = layer
        self.ttl_ms = int(ttl_s * 1000)
        self.max_entries = max_entries
        self._lookup = r.register_script(_LOOKUP)
        self._store = r.register_script(_STORE)

    def get(self, tenant: str, groups: Sequence[str], digest: str) -> Hit | None:
        return self.lookup(tenant, groups, digest)[1]

    def lookup(self, tenant: str, groups: Sequence[str], digest: str) -> tuple[int, Hit | None]:
        """The tenant's generation (-1: Redis is down) and the entry, if it stands for the caller."""
        try:
            reply: list[str] = self._lookup(
                keys=[generation_key(tenant), cache_lru_key(tenant), cache_stats_key(tenant)],
                args=[cache_prefix(tenant, self.layer), digest, time.time(), doc_key(tenant, ""), f"{self.layer}_miss"],
            )
        except redis.exceptions.RedisError as exc:
            log.warning("%s cache lookup skipped (Redis: %s)", self.layer, exc)
            return -1, None
        entry, generation, records = reply[0], int(reply[1]), reply[2:]
        if not entry:  # counted by the script: a miss costs one round trip
            return generation, None
        stored = json.loads(entry)
        readable = set(reader_groups(groups))
        for (_doc_id, version), (published, doc_groups) in zip(
            stored["cited"], zip(records[::2], records[1::2], strict=True), strict=True
        ):
            # The key makes this unreachable after any change; the check makes sure of it.
            if published != version or not readable & set(json.loads(doc_groups or "[]")):
                self.count(tenant, f"{self.layer}_refused")
                return generation, None
        self.count(tenant, f"{self.layer}_hit")
        return generation, Hit(answer=stored["answer"], question=stored["question"], generation=generation)

    def put(
        self,
        tenant: str,
        digest: str,
        generation: int,
        question: str,
        answer: dict[str, Any],
        cited: Sequence[tuple[str, str]] | None = None,
    ) -> bool:
        """Store an answer read at `generation`, citing `cited` (doc id, version) pairs (by
        default `answer["citations"]`'s). False when the tenant's generation has moved on since
        (the answer may be stale) or Redis is down."""
        if cited is None:
            cited = [(c["doc_id"], c["version"]) for c in answer.get("citations", [])]
        entry = json.dumps({"answer": answer, "question": question, "cited": list(cited), "generation": generation})
        try:
            evicted, swept = self._store(
                keys=[*_accounts(tenant), generation_key(tenant), cache_generations_key(tenant)],
                args=[
                    cache_prefix(tenant, self.layer),
                    digest,
                    generation,
                    entry,
                    self.ttl_ms,
                    time.time(),
                    self.max_entries,
                    cache_doc_key(tenant, ""),
                    cache_generation_key(tenant, ""),
                    SWEEP_CAP,
                ],
            )
        except redis.exceptions.RedisError as exc:
            log.warning("%s cache store skipped (Redis: %s)", self.layer, exc)
            return False
        if int(evicted) < 0:
            return False
        self.count(tenant, f"{self.layer}_stored", evictions=int(evicted), swept=int(swept))
        return True

    def count(self, tenant: str, what: str, evictions: int = 0, swept: int = 0) -> None:
        try:
            pipe = self.r.pipeline(transaction=False)
            pipe.hincrby(cache_stats_key(tenant), what, 1)
            if evictions:
                pipe.hincrby(cache_stats_key(tenant), "evicted", evictions)
            if swept:
                pipe.hincrby(cache_stats_key(tenant), "swept", swept)
            pipe.execute()
        except redis.exceptions.RedisError:
            pass  # statistics are not worth an error


def entry_digest(scope: str, question: str) -> str:
    """An entry's digest: its scope's (an HMAC the edge made) and the question, folded."""
    return hashlib.sha256(f"{scope}\n{exact_key(question)}".encode()).hexdigest()


def entry_key(tenant: str, layer: str, digest: str, generation: int) -> str:
    """The Redis key of an entry (as the scripts name it)."""
    return cache_prefix(tenant, layer) + hashlib.sha1(f"{digest}:{generation}".encode()).hexdigest()


def _accounts(tenant: str) -> list[str]:
    """The keys every removal updates (`_DROP`'s KEYS)."""
    return [cache_lru_key(tenant), cache_sizes_key(tenant), cache_stats_key(tenant)]


def forget_entry(r: redis.Redis, tenant: str, key: str) -> bool:
    """Remove one entry (a client flagged its answer as wrong); True when it was there."""
    gone = int(r.register_script(_FORGET)(keys=_accounts(tenant), args=[key]))
    r.hincrby(cache_stats_key(tenant), "flagged", 1)
    return gone > 0


def forget_document(r: redis.Redis, tenant: str, doc_id: str) -> int:
    """Remove every cache entry that cites the document (its deletion: no snippet of it may stay
    in Redis); returns how many went."""
    return int(r.register_script(_FORGET)(keys=[*_accounts(tenant), cache_doc_key(tenant, doc_id)]))
