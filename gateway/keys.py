"""API keys: random, prefixed, shown once, stored only as a hash; each carries tenant, roles, groups.

A key reads `keel_<id>_<secret>`: the prefix makes a leaked key easy to find in a scan, the id
(48 bits, public) names it in lists, logs and the audit trail, and the secret is 256 random bits.
Redis holds the SHA-256 of the whole key, never the key. The secret is already random enough that
a slow password hash would add latency and no safety. Every request resolves its key afresh, so a
revocation holds from the next request on.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import redis

from gateway.limits import Limits
from keel.errors import BadInput, GroupNotHeld, InvalidKey, MissingKey, NotFound, RevokedKey
from keel.tenancy import check_groups, check_tenant
from stores.keys import api_key_key, tenant_api_keys_key

KEY_PREFIX = "keel_"
ADMIN, INGEST, QUERY = "admin", "ingest", "query"
# operator: the deployment's people, who may decode any tenant's workflow payloads at the codec
# endpoint; made only from the command line (`keel keys create --roles operator`), never by an API key.
OPERATOR = "operator"
ROLES = (ADMIN, INGEST, QUERY, OPERATOR)  # admin: keys and the tenant; ingest: documents and jobs; query: ask


@dataclass(frozen=True, kw_only=True)
class Principal:
    """Who a request acts for: everything comes from its key, nothing from a header."""

    key_id: str
    tenant: str
    roles: frozenset[str]
    groups: tuple[str, ...]
    name: str = ""
    limits: Limits = field(default_factory=Limits)

    def narrowed(self, requested: Sequence[str]) -> Principal:
        """The same principal with fewer groups (a header may narrow, never widen)."""
        wanted = check_groups(requested)
        extra = sorted(set(wanted) - set(self.groups))
        if extra:
            raise GroupNotHeld(f"the key does not hold access groups {extra}")
        return replace(self, groups=tuple(wanted))


@dataclass(frozen=True, kw_only=True)
class KeyRecord:
    key_id: str
    tenant: str
    roles: list[str]
    groups: list[str]
    name: str
    created_at: float
    revoked_at: float | None = None
    limits: Limits = field(default_factory=Limits)

    def principal(self) -> Principal:
        return Principal(
            key_id=self.key_id,
            tenant=self.tenant,
            roles=frozenset(self.roles),
            groups=tuple(self.groups),
            name=self.name,
            limits=self.limits,
        )


def check_roles(roles: Sequence[str]) -> list[str]:
    bad = sorted(set(roles) - set(ROLES))
    if bad or not roles:
        raise BadInput(f"roles must be one or more of {', '.join(ROLES)} (got {sorted(set(roles))})")
    return sorted(set(roles))


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class KeyStore:
    def __init__(self, client: redis.Redis) -> None:
        self.r = client

    def create(
        self,
        *,
        tenant: str,
        roles: Sequence[str],
        groups: Sequence[str] = (),
        name: str = "",
        limits: Limits | None = None,
    ) -> tuple[KeyRecord, str]:
        """A new key; the returned token is the only copy there will ever be."""
        record = KeyRecord(
            key_id=secrets.token_hex(6),
            tenant=check_tenant(tenant),
            roles=check_roles(roles),
            groups=check_groups(groups),
            name=name.strip()[:100],
            created_at=time.time(),
            limits=limits or Limits(),
        )
        token = f"{KEY_PREFIX}{record.key_id}_{secrets.token_urlsafe(32)}"
        # Listed under its tenant first, then written: on a Redis Cluster the two keys lie in
        # different slots, and a listed id with no record yet is skipped, while a record that no
        # listing named would be a key its tenant could not see or revoke.
        self.r.sadd(tenant_api_keys_key(record.tenant), record.key_id)
        self.r.hset(
            api_key_key(record.key_id),
            mapping={
                "digest": _digest(token),
                "tenant": record.tenant,
                "roles": json.dumps(record.roles),
                "groups": json.dumps(record.groups),
                "name": record.name,
                "created_at": record.created_at,
                "limits": record.limits.to_json(),
            },
        )
        return record, token

    def resolve(self, token: str | None) -> Principal:
        """The principal of a presented key; 401 for none, a malformed, unknown or revoked one."""
        if not token:
            raise MissingKey("send an API key: `Authorization: Bearer keel_...`")
        parts = token.split("_", 2)
        if len(parts) != 3 or not token.startswith(KEY_PREFIX) or not parts[1].isalnum() or len(token) > 200:
            raise InvalidKey("the API key is malformed")
        raw: dict[str, str] = self.r.hgetall(api_key_key(parts[1]))  # type: ignore[assignment]
        if not raw or not hmac.compare_digest(raw.get("digest", ""), _digest(token)):
            raise InvalidKey("the API key is not known")
        record = _record(parts[1], raw)
        if record.revoked_at is not None:
            raise RevokedKey(f"the API key {record.key_id} was revoked")
        return record.principal()

    def get(self, key_id: str) -> KeyRecord | None:
        raw: dict[str, str] = self.r.hgetall(api_key_key(key_id))  # type: ignore[assignment]
        return _record(key_id, raw) if raw else None

    def owner_of(self, token: str) -> str | None:
        """The tenant a presented (maybe revoked or mistyped) key names, for the audit log."""
        parts = token.split("_", 2)
        if len(parts) != 3 or not parts[1].isalnum():
            return None
        found = self.r.hget(api_key_key(parts[1]), "tenant")
        return str(found) if found else None

    def revoke(self, key_id: str, tenant: str | None = None) -> KeyRecord:
        """Revoke a key (of `tenant`, when given: another tenant's key is as absent as a missing one)."""
        record = self.get(key_id) if key_id.isalnum() else None
        if record is None or (tenant is not None and record.tenant != tenant):
            raise NotFound(f"no API key {key_id!r}")
        if record.revoked_at is None:
            now = time.time()
            self.r.hset(api_key_key(key_id), "revoked_at", now)
            record = replace(record, revoked_at=now)
        return record

    def list(self, tenant: str | None = None) -> list[KeyRecord]:
        if tenant is not None:
            ids: set[str] = self.r.smembers(tenant_api_keys_key(tenant))  # type: ignore[assignment]
        else:
            ids = {k.rsplit(":", 1)[1] for k in self.r.scan_iter(match=api_key_key("*"), count=500)}
        records = [r for r in (self.get(i) for i in sorted(ids)) if r is not None]
        return sorted(records, key=lambda r: (r.tenant, r.created_at))


def _record(key_id: str, raw: dict[str, str]) -> KeyRecord:
    revoked = raw.get("revoked_at")
    return KeyRecord(
        key_id=key_id,
        tenant=raw["tenant"],
        roles=json.loads(raw.get("roles", "[]")),
        groups=json.loads(raw.get("groups", "[]")),
        name=raw.get("name", ""),
        created_at=float(raw.get("created_at", 0)),
        revoked_at=float(revoked) if revoked else None,
        limits=Limits.from_json(raw.get("limits")),
    )
