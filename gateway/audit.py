"""The audit log: who created or revoked a key, and every request that was denied, per tenant.

A Redis stream per tenant (`keel:audit:<tenant>`), capped at AUDIT_MAX entries; a tenant's admin
reads its own (`GET /v1/admin/audit`, `keel audit`). A denied request whose key names no known
tenant goes to an operators' stream. Entries hold key ids and request ids, never keys.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import redis

from stores.keys import UNATTRIBUTED_AUDIT, audit_key

AUDIT_MAX = 100_000


@dataclass(frozen=True, kw_only=True)
class AuditEntry:
    id: str
    at: float
    event: str  # key_created | key_revoked | denied
    key_id: str
    request_id: str
    detail: dict[str, Any]


class Audit:
    def __init__(self, client: redis.Redis) -> None:
        self.r = client

    def record(self, tenant: str | None, event: str, *, key_id: str = "", request_id: str = "", **detail: Any) -> None:
        fields = {
            "at": time.time(),
            "event": event,
            "key_id": key_id,
            "request_id": request_id,
            "detail": json.dumps(detail, sort_keys=True),
        }
        stream = audit_key(tenant) if tenant else UNATTRIBUTED_AUDIT
        self.r.xadd(stream, fields, maxlen=AUDIT_MAX, approximate=True)  # type: ignore[arg-type]

    def read(self, tenant: str, limit: int = 100) -> list[AuditEntry]:
        """The newest entries first."""
        rows: Any = self.r.xrevrange(audit_key(tenant), count=max(1, min(limit, 1000)))
        return [
            AuditEntry(
                id=entry_id,
                at=float(f.get("at", 0)),
                event=f.get("event", ""),
                key_id=f.get("key_id", ""),
                request_id=f.get("request_id", ""),
                detail=json.loads(f.get("detail", "{}")),
            )
            for entry_id, f in rows
        ]
