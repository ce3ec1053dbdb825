"""The exact cache's store on a real Redis: keyed by scope and generation, bounded per tenant,
and never an error when Redis is gone."""

from __future__ import annotations

import uuid

import redis

from caches.admin import stats
from caches.entries import entry_key, forget_document, forget_entry
from caches.exact import ExactCache
from infra.services import free_port
from stores.keys import cache_lru_key, doc_key, generation_key

SECRET = b"s" * 32


def _answer(doc: str, version: str) -> dict[str, object]:
    return {"answer": "It is so [1].", "citations": [{"doc_id": doc, "version": version}]}


def test_entries_follow_the_generation_and_the_cited_versions(redis_client: redis.Redis) -> None:
    r, tenant = redis_client, f"c{uuid.uuid4().hex[:8]}"
    cache = ExactCache(r, SECRET, ttl_s=60, max_entries=100)
    r.set(generation_key(tenant), 3)
    r.hset(doc_key(tenant, "d1"), mapping={"version": "v1", "groups": '["all"]'})
    digest = cache.digest(tenant, [], {"mode": "hybrid"}, "What is it?")
    assert digest == cache.digest(tenant, [], {"mode": "hybrid"}, "  what is IT ")
    assert digest != cache.digest(tenant, ["hr"], {"mode": "hybrid"}, "What is it?")
    assert digest != cache.digest(f"{tenant}x", [], {"mode": "hybrid"}, "What is it?")
    assert not any("what is it" in k for k in r.keys("keel:cache:*"))

    assert not cache.put(tenant, digest, 2, "What is it?", _answer("d1", "v1"))  # read at an older generation
    assert cache.put(tenant, digest, 3, "What is it?", _answer("d1", "v1"))
    hit = cache.get(tenant, [], digest)
    assert hit is not None and hit.answer["answer"] == "It is so [1]."
    r.hset(doc_key(tenant, "d1"), "groups", '["finance"]')
    assert cache.get(tenant, [], digest) is None  # the cited document is no longer readable by the caller
    r.hset(doc_key(tenant, "d1"), mapping={"groups": '["all"]', "version": "v2"})
    assert cache.get(tenant, [], digest) is None  # the cited version is no longer the published one
    r.hset(doc_key(tenant, "d1"), "version", "v1")
    assert cache.get(tenant, [], digest) is not None
    r.incr(generation_key(tenant))
    assert cache.get(tenant, [], digest) is None  # a publish elsewhere: every entry unreachable at once


def test_each_tenant_keeps_its_newest_entries_and_never_evicts_another_tenants(redis_client: redis.Redis) -> None:
    r = redis_client
    a, b = f"c{uuid.uuid4().hex[:8]}", f"c{uuid.uuid4().hex[:8]}"
    cache = ExactCache(r, SECRET, ttl_s=60, max_entries=3)
    for t in (a, b):
        r.set(generation_key(t), 1)
    kept_b = cache.digest(b, [], {}, "b question")
    assert cache.put(b, kept_b, 1, "b question", {"citations": []})
    digests = [cache.digest(a, [], {}, f"question {i}") for i in range(5)]
    for d in digests:
        assert cache.put(a, d, 1, "q", {"citations": []})
    assert r.zcard(cache_lru_key(a)) == 3
    assert [cache.get(a, [], d) is not None for d in digests] == [False, False, True, True, True]
    assert cache.get(b, [], kept_b) is not None


def test_a_cache_whose_redis_is_gone_is_a_miss_not_an_error() -> None:
    dead = redis.Redis(port=free_port(), socket_connect_timeout=0.2, socket_timeout=0.2, decode_responses=True)
    cache = ExactCache(dead, SECRET, ttl_s=60, max_entries=3)
    digest = cache.digest("t", [], {}, "q")
    assert cache.get("t", [], digest) is None
    assert cache.put("t", digest, 1, "q", {"citations": []}) is False


def test_deleting_a_document_removes_the_entries_that_quote_it(redis_client: redis.Redis) -> None:
    from caches.entries import forget_document

    r, tenant = redis_client, f"c{uuid.uuid4().hex[:8]}"
    cache = ExactCache(r, SECRET, ttl_s=60, max_entries=100)
    r.set(generation_key(tenant), 1)
    quoting, other = cache.digest(tenant, [], {}, "q1"), cache.digest(tenant, [], {}, "q2")
    assert cache.put(tenant, quoting, 1, "q1", _answer("d1", "v1"))
    assert cache.put(tenant, other, 1, "q2", _answer("d2", "v1"))
    assert forget_document(r, tenant, "d1") == 1
    assert not any("d1" in str(r.get(k) or "") for k in r.keys(f"keel:cache:{{{tenant}}}:x:*"))
    assert r.zcard(cache_lru_key(tenant)) == 1 and forget_document(r, tenant, "d1") == 0


def test_an_operator_sees_and_empties_one_tenants_cache(redis_client: redis.Redis) -> None:
    from caches import admin

    r = redis_client
    a, b = f"c{uuid.uuid4().hex[:8]}", f"c{uuid.uuid4().hex[:8]}"
    cache = ExactCache(r, SECRET, ttl_s=60, max_entries=100)
    for t in (a, b):
        r.set(generation_key(t), 1)
        r.hset(doc_key(t, "d1"), mapping={"version": "v1", "groups": '["all"]'})
        assert cache.put(t, cache.digest(t, [], {}, "q"), 1, "q", _answer("d1", "v1"))
    assert cache.get(a, [], cache.digest(a, [], {}, "q")) is not None
    seen = admin.stats(r, a)
    assert seen["entries"] == 1 and seen["bytes"] > 0 and seen["counters"]["exact_hit"] == 1
    assert admin.purge(r, a) >= 2  # the entry, its LRU and per-document index
    assert admin.stats(r, a)["entries"] == 0 and admin.stats(r, b)["entries"] == 1


def _live_bytes(r: redis.Redis, tenant: str) -> int:
    return sum(int(r.strlen(str(k))) for k in r.zrange(cache_lru_key(tenant), 0, -1))


def test_older_generations_are_swept_and_the_byte_count_follows_every_removal(redis_client: redis.Redis) -> None:
    r, tenant = redis_client, f"c{uuid.uuid4().hex[:8]}"
    cache = ExactCache(r, SECRET, ttl_s=60, max_entries=4)
    r.set(generation_key(tenant), 1)
    r.hset(doc_key(tenant, "d1"), mapping={"version": "v1", "groups": '["all"]'})
    old = [cache.digest(tenant, [], {}, f"old {i}") for i in range(3)]
    for d in old:
        assert cache.put(tenant, d, 1, "q", _answer("d1", "v1"))
    assert stats(r, tenant)["bytes"] == _live_bytes(r, tenant) > 0
    old_keys = [entry_key(tenant, "exact", d, 1) for d in old]
    r.incr(generation_key(tenant))  # a publish: the old entries are unreachable, then swept
    assert cache.put(tenant, cache.digest(tenant, [], {}, "new"), 2, "q", _answer("d1", "v1"))
    assert not any(r.exists(k) for k in old_keys)
    assert stats(r, tenant)["entries"] == 1 and stats(r, tenant)["counters"]["swept"] == 3
    for i in range(6):  # past the cap: the least recently used go, their bytes with them
        assert cache.put(tenant, cache.digest(tenant, [], {}, f"more {i}"), 2, "q", _answer("d1", "v1"))
    assert stats(r, tenant)["entries"] == 4 and stats(r, tenant)["bytes"] == _live_bytes(r, tenant)
    assert forget_document(r, tenant, "d1") == 4
    assert stats(r, tenant)["entries"] == 0 and stats(r, tenant)["bytes"] == 0
    kept = cache.digest(tenant, [], {}, "flagged")
    assert cache.put(tenant, kept, 2, "q", _answer("d1", "v1"))
    assert forget_entry(r, tenant, entry_key(tenant, "exact", kept, 2))  # named as the script names it
    assert cache.get(tenant, [], kept) is None and stats(r, tenant)["bytes"] == 0
