"""From the 0.1 key names to the tagged ones (`stores.keys`), and the one-off move between them.

0.1 releases named a tenant's keys `keel:doc:acme:d1`; they are now `keel:doc:{acme}:d1`, so a
Redis Cluster keeps a tenant's keys in one slot. `tagged` maps a name; `migrate` renames every
key of a running server, once, with Keel stopped (`keel admin migrate-redis`). It is resumable:
a key already renamed is not seen again, and a key whose new name exists already is left as it
is and reported. A backup taken by 0.1 restores through `tagged` too (`pipelines.restore`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import redis

from stores import snapshot
from stores.redis import is_cluster

# The kinds whose third segment is the owner, a tenant (or a provider's breaker): `keel:<kind>:<owner>[:rest]`.
TENANT_KINDS = frozenset(
    {
        "doc", "docs", "docv", "ingesting", "gen", "bm25", "q", "dek", "restoring", "index", "mig", "migs",
        "cache", "dd", "apikeys", "audit", "limits", "ans", "fb", "guard", "prompts", "breaker",
    }
)  # fmt: skip
UNTAGGED = "untagged"  # a key of a kind that needs no tag (one key, never combined with another)


def tagged(key: str, key_tenant: Callable[[str], str | None]) -> str | None:
    """The tagged name of a 0.1 key (the key itself when it needs no change), or None when it
    cannot be placed: the limiter's counters of an API key that no longer exists.
    `key_tenant` names the tenant of an API key id."""
    if "{" in key:
        return key  # tagged already
    parts = key.split(":")
    if len(parts) < 3 or parts[0] != "keel":
        return key
    kind, owner, rest = parts[1], parts[2], parts[3:]
    if kind == "audit" and owner == "-":
        return key  # denied requests whose key names no tenant: one global stream
    if kind in TENANT_KINDS:
        return ":".join(["keel", kind, "{" + owner + "}", *rest])
    if kind == "lock" and owner == "publish" and rest:
        return f"keel:lock:publish:{{{rest[0]}}}"
    if kind == "job":
        return ":".join(["keel", "job", "{" + owner + "}", *rest])
    if kind == "rl" and rest:
        # keel:rl:<scope>:<id>[/<family>]:<what...>; the id's owner is the tenant or a key's
        scope, scope_id, what = owner, rest[0], rest[1:]
        base = scope_id.split("/", 1)[0]
        tenant = base if scope == "tenant" else key_tenant(base)
        if tenant is None:
            return None
        return ":".join(["keel", "rl", "{" + tenant + "}", scope, scope_id, *what])
    return key


@dataclass
class Moved:
    """What one pass of the migration did."""

    seen: int = 0
    renamed: int = 0
    conflicts: list[str] = field(default_factory=list)  # the new name existed: the old key is left
    orphans: list[str] = field(default_factory=list)  # no tenant to place it under: left as it is


def migrate(r: redis.Redis, *, dry_run: bool = False, progress: Callable[[Moved], None] | None = None) -> Moved:
    """Rename every 0.1 key of the server to its tagged name. On one server a RENAMENX each (atomic:
    a key is either under its old name or its new one); on a cluster, where a rename cannot cross
    slots, the key read as a record and written under its new name with its time to live, then
    deleted (`stores.snapshot`)."""
    moved = Moved()
    tenants: dict[str, str | None] = {}

    def key_tenant(key_id: str) -> str | None:
        if key_id not in tenants:
            owner = r.hget(f"keel:apikey:{key_id}", "tenant")
            tenants[key_id] = str(owner) if owner else None
        return tenants[key_id]

    for key in _old_keys(r):
        moved.seen += 1
        new = tagged(key, key_tenant)
        if new is None:
            moved.orphans.append(key)
            continue
        if new == key:
            continue
        if dry_run or _move(r, key, new):
            moved.renamed += 1
        else:
            moved.conflicts.append(key)
        if progress is not None and moved.seen % 1000 == 0:
            progress(moved)
    return moved


def _old_keys(r: redis.Redis) -> Iterator[str]:
    # Listed first, then moved: a key renamed mid-scan could otherwise be seen twice or skipped.
    yield from sorted({str(k) for k in r.scan_iter(match="keel:*", count=1000) if "{" not in str(k)})


def _move(r: redis.Redis, old: str, new: str) -> bool:
    if not is_cluster(r):
        try:
            return bool(r.renamenx(old, new))
        except redis.ResponseError as exc:  # gone since it was listed
            if "no such key" in str(exc).lower():
                return True
            raise
    if r.exists(new):
        return False
    records = list(snapshot.dump(r, [old]))  # text records: this client decodes every reply
    if not records:
        return True  # gone since it was listed
    pipe = r.pipeline()  # the new key's writes, in its own slot
    snapshot.restore(pipe, {**records[0], "key": new})
    pipe.execute()
    r.delete(old)
    return True
