"""Prompt releases: which version of each prompt family answers, per tenant, behind labels.

A family is a kind of prompt (`answer`, `answer-json`); a version is a template file's id
(`answer.v2`). A registry maps labels to versions: `production` (what answers), `canary` (what
answers for a share of callers) and `previous` (what `rollback` returns to). It has a global
scope and one per tenant; a tenant's labels win over the global ones, and with neither the
shipped default answers. A caller is in the canary by a hash of (tenant, key id), so the same
caller always gets the same version while the share stays. `rollback` is the kill switch: the
family goes back to its previous production version and its canary ends, everywhere within
RELEASES_TTL_S (the edge reads the registry through a cache that short). Every change is
written to the audit log by the caller (`app.prompts`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import redis

from stores.keys import prompt_releases_key
from stores.recent import Recent

GLOBAL = "*"
RELEASES_TTL_S = 2.0


@dataclass(frozen=True, kw_only=True)
class Release:
    """One family's labels in one scope ("" where unset)."""

    production: str = ""
    canary: str = ""
    canary_share: float = 0.0
    previous: str = ""


@dataclass(frozen=True, kw_only=True)
class Assignment:
    prompt_id: str
    label: str  # production | canary | default
    scope: str  # the tenant whose registry decided, "*" for the global one, "" for the default


_recent: Recent[dict[str, Release]] = Recent(RELEASES_TTL_S)


def releases(r: redis.Redis, scope: str, *, fresh: bool = False) -> dict[str, Release]:
    """A scope's families and their labels (cached for RELEASES_TTL_S unless `fresh`)."""
    return _recent.get(r, scope, lambda: _read(r, scope), fresh=fresh)


def _read(r: redis.Redis, scope: str) -> dict[str, Release]:
    families: dict[str, dict[str, str]] = {}
    for field, value in r.hgetall(prompt_releases_key(scope)).items():
        family, _, label = str(field).rpartition(":")
        families.setdefault(family, {})[label] = str(value)
    return {
        family: Release(
            production=labels.get("production", ""),
            canary=labels.get("canary", ""),
            canary_share=float(labels.get("canary_share", 0) or 0),
            previous=labels.get("previous", ""),
        )
        for family, labels in families.items()
    }


def in_canary(tenant: str, key_id: str, share: float) -> bool:
    """Sticky: the same (tenant, key) lands on the same side for as long as the share stays."""
    bucket = int.from_bytes(hashlib.sha256(f"{tenant}\0{key_id}".encode()).digest()[:4], "big") / 2**32
    return bucket < share


def assign(r: redis.Redis, tenant: str, key_id: str, family: str, default: str) -> Assignment:
    for scope in (tenant, GLOBAL):
        release = releases(r, scope).get(family)
        if release is None or not (release.production or release.canary):
            continue
        if release.canary and in_canary(tenant, key_id, release.canary_share):
            return Assignment(prompt_id=release.canary, label="canary", scope=scope)
        if release.production:
            return Assignment(prompt_id=release.production, label="production", scope=scope)
    return Assignment(prompt_id=default, label="default", scope="")


def promote(r: redis.Redis, scope: str, family: str, version: str, canary_share: float | None) -> Release:
    """`canary_share` None: `version` becomes production (the old one is kept as previous, and a
    canary of the same version ends). A share: `version` is the canary for that share."""
    key = prompt_releases_key(scope)
    current = releases(r, scope, fresh=True).get(family, Release())
    if canary_share is None:
        pipe = r.pipeline()
        pipe.hset(key, f"{family}:production", version)
        pipe.hset(key, f"{family}:previous", current.production)
        if current.canary == version:
            pipe.hdel(key, f"{family}:canary", f"{family}:canary_share")
        pipe.execute()
    else:
        pipe = r.pipeline()
        pipe.hset(key, f"{family}:canary", version)
        pipe.hset(key, f"{family}:canary_share", str(canary_share))
        pipe.execute()
    return _forget(r, scope, family)


def rollback(r: redis.Redis, scope: str, family: str) -> Release:
    """The kill switch: back to the previous production version (or to the shipped default when
    there is none), and no canary."""
    key = prompt_releases_key(scope)
    current = releases(r, scope, fresh=True).get(family, Release())
    pipe = r.pipeline()
    pipe.hdel(key, f"{family}:canary", f"{family}:canary_share", f"{family}:previous")
    if current.previous:
        pipe.hset(key, f"{family}:production", current.previous)
    else:
        pipe.hdel(key, f"{family}:production")
    pipe.execute()
    return _forget(r, scope, family)


def _forget(r: redis.Redis, scope: str, family: str) -> Release:
    _recent.forget(r, scope)
    return releases(r, scope, fresh=True).get(family, Release())
