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
from stores.keys import cache_doc_key, cache_lru_key, cache_prefix, cache_stats_key, doc_key, generation_key

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

_STORE = """
local gen = redis.call('GET', KEYS[1]) or '0'
if gen ~= ARGV[3] then return -1 end
local key = ARGV[1] .. redis.sha1hex(ARGV[2] .. ':' .. gen)
redis.call('SET', key, ARGV[4], 'PX', ARGV[5])
for _, cited in ipairs(cjson.decode(ARGV[4])['cited']) do
  local by_doc = ARGV[8] .. cited[1]
  redis.call('SADD', by_doc, key)
  redis.call('PEXPIRE', by_doc, ARGV[5])
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[6] - ARGV[5] / 1000)
redis.call('ZADD', KEYS[2], ARGV[6], key)
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[7])
local evicted = 0
if over > 0 then
  local oldest = redis.call('ZPOPMIN', KEYS[2], over)
  for i = 1, #oldest, 2 do
    redis.call('DEL', oldest[i])
    evicted = evicted + 1
  end
end
return evicted
"""


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
            evicted = int(
                self._store(
                    keys=[generation_key(tenant), cache_lru_key(tenant)],
                    args=[
                        cache_prefix(tenant, self.layer),
                        digest,
                        generation,
                        entry,
                        self.ttl_ms,
                        time.time(),
                        self.max_entries,
                        cache_doc_key(tenant, ""),
                    ],
                )
            )
        except redis.exceptions.RedisError as exc:
            log.warning("%s cache store skipped (Redis: %s)", self.layer, exc)
            return False
        if evicted < 0:
            return False
        self.count(tenant, f"{self.layer}_stored", evictions=evicted)
        return True

    def count(self, tenant: str, what: str, evictions: int = 0) -> None:
        try:
            pipe = self.r.pipeline(transaction=False)
            pipe.hincrby(cache_stats_key(tenant), what, 1)
            if evictions:
                pipe.hincrby(cache_stats_key(tenant), "evicted", evictions)
            pipe.execute()
        except redis.exceptions.RedisError:
            pass  # statistics are not worth an error


def entry_digest(scope: str, question: str) -> str:
    """An entry's digest: its scope's (an HMAC the edge made) and the question, folded."""
    return hashlib.sha256(f"{scope}\n{exact_key(question)}".encode()).hexdigest()


def forget_document(r: redis.Redis, tenant: str, doc_id: str) -> int:
    """Remove every cache entry that cites the document (its deletion: no snippet of it may stay
    in Redis); returns how many went."""
    by_doc = cache_doc_key(tenant, doc_id)
    entries = [str(k) for k in r.smembers(by_doc)]
    pipe = r.pipeline(transaction=True)
    if entries:
        pipe.delete(*entries)
        pipe.zrem(cache_lru_key(tenant), *entries)
    pipe.delete(by_doc)
    pipe.execute()
    return len(entries)
