"""Every kind of key Keel writes survives a dump and a restore on a real Redis, TTLs included."""

from __future__ import annotations

import uuid

import redis

from stores import snapshot


def test_each_type_round_trips(redis_client: redis.Redis) -> None:
    r = redis_client
    p = f"snap-{{{uuid.uuid4().hex[:8]}}}"  # one hash tag: a transaction over them stays in one slot
    r.set(f"{p}:s", "text é")
    r.hset(f"{p}:h", mapping={"a": "1", "b": "two"})
    r.sadd(f"{p}:set", "x", "y")
    r.zadd(f"{p}:z", {"m1": 1.5, "m2": 3})
    r.rpush(f"{p}:l", "first", "second")
    r.xadd(f"{p}:st", {"event": "one"}, id="1-1")
    r.xadd(f"{p}:st", {"event": "two"}, id="2-1")
    r.set(f"{p}:ttl", "v", px=60_000)
    keys = [f"{p}:{k}" for k in ("s", "h", "set", "z", "l", "st", "ttl", "gone")]
    records = list(snapshot.dump(r, keys))
    assert [rec["key"] for rec in records] == keys[:-1]  # a key gone since listing is skipped
    before = {k: r.dump(k) for k in keys[:-1]}
    r.delete(*keys)

    pipe = r.pipeline(transaction=True)
    for rec in records:
        snapshot.restore(pipe, rec)
    pipe.execute()
    assert {k: r.dump(k) for k in keys[:-1]} == before
    assert 0 < int(r.pttl(f"{p}:ttl")) <= 60_000 and int(r.pttl(f"{p}:s")) == -1

    # Adding to a set that holds members already (the tenant's API key ids after an erasure).
    r.delete(f"{p}:set")
    r.sadd(f"{p}:set", "z")
    pipe = r.pipeline()
    snapshot.restore(pipe, next(rec for rec in records if rec["type"] == "set"), replace=False)
    pipe.execute()
    assert r.smembers(f"{p}:set") == {"x", "y", "z"}
