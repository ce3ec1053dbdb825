"""The audit log: who created or revoked a key, erased, restored or released, and every request
that was denied, per tenant.

Two Redis streams per tenant. Security events (`keel:audit:<tenant>`) are never trimmed by count.
Denials (`keel:audit:<tenant>:denied`) are capped at DENIED_MAX: anyone holding, or guessing, a
key id can cause them, and with one capped stream for both, ~100k denials pushed `key_created`
and `tenant_erased` out of the log. A tenant's admin reads both, merged newest first
(`GET /v1/admin/audit`, `keel audit`). A denied request whose key names no known tenant goes to
an operators' stream. Entries hold key ids and request ids, never keys.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import redis

from stores.keys import UNATTRIBUTED_AUDIT, audit_denied_key, audit_key

DENIED_MAX = 100_000
DENIED = "denied"


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
        if event != DENIED:
            self.r.xadd(audit_key(tenant) if tenant else UNATTRIBUTED_AUDIT, fields)  # type: ignore[arg-type]
            return
        stream = audit_denied_key(tenant) if tenant else UNATTRIBUTED_AUDIT
        self.r.xadd(stream, fields, maxlen=DENIED_MAX, approximate=True)  # type: ignore[arg-type]

    def read(self, tenant: str, limit: int = 100) -> list[AuditEntry]:
        """The newest entries of both streams, merged, newest first."""
        count = max(1, min(limit, 1000))
        pipe = self.r.pipeline(transaction=False)
        pipe.xrevrange(audit_key(tenant), count=count)
        pipe.xrevrange(audit_denied_key(tenant), count=count)
        security, denied = pipe.execute()
        rows: Any = sorted([*security, *denied], key=_order, reverse=True)[:count]
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


def _order(row: tuple[str, dict[str, str]]) -> tuple[float, int, int]:
    """Newest first across two streams: by the time the entry was recorded (finer than a stream
    id's millisecond, whose sequence numbers are each stream's own), then by the id."""
    entry_id, fields = row
    ms, _, seq = entry_id.partition("-")
    return float(fields.get("at", 0)), int(ms), int(seq or 0)
