"""Which conversations a principal owns: the index the list route reads.

The conversation itself (its turns) lives in its workflow; this is a sorted set per owner, of
conversation ids by last activity, so listing needs no Temporal visibility query and an owner
check is one ZSCORE. An entry idle past the retention is a conversation that has expired; reads
drop those. Keys are tagged by the tenant, and erased with it.
"""

from __future__ import annotations

import time

import redis

from stores.keys import conversations_key

MAX_LISTED = 200


def add(r: redis.Redis, tenant: str, owner: str, conversation_id: str, at: float | None = None) -> None:
    r.zadd(conversations_key(tenant, owner), {conversation_id: at if at is not None else time.time()})


touch = add  # a turn moves the conversation to the top of its owner's list


def owns(r: redis.Redis, tenant: str, owner: str, conversation_id: str, retention_s: float) -> bool:
    """Does `owner` hold this live conversation? Another principal's, or an expired one, is not."""
    last = r.zscore(conversations_key(tenant, owner), conversation_id)
    return last is not None and float(last) >= time.time() - retention_s


def listed(r: redis.Redis, tenant: str, owner: str, retention_s: float, limit: int = MAX_LISTED) -> list[str]:
    """The owner's live conversations, most recently active first; expired entries are dropped."""
    key = conversations_key(tenant, owner)
    oldest = time.time() - retention_s
    r.zremrangebyscore(key, "-inf", f"({oldest}")
    ids: list[str] = r.zrevrangebyscore(key, "+inf", oldest, start=0, num=limit)  # type: ignore[assignment]
    return ids


def remove(r: redis.Redis, tenant: str, owner: str, conversation_id: str) -> bool:
    return bool(r.zrem(conversations_key(tenant, owner), conversation_id))


def every(r: redis.Redis, tenant: str) -> list[str]:
    """Every conversation id of the tenant, whoever owns it (the tenant's erasure ends them)."""
    found: list[str] = []
    for key in r.scan_iter(match=conversations_key(tenant, "*"), count=500):
        ids: list[str] = r.zrange(key, 0, -1)  # type: ignore[assignment]  # a decoding client
        found.extend(ids)
    return found
