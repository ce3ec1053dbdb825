"""The audit log keeps security events whatever an outsider does: denials have a capped stream of their own."""

from __future__ import annotations

import uuid

import pytest
import redis

from gateway import audit
from gateway.audit import Audit

pytestmark = [pytest.mark.stack]


def test_denials_never_push_security_events_out(redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    tenant = f"t{uuid.uuid4().hex[:10]}"
    log = Audit(redis_client)
    monkeypatch.setattr(audit, "DENIED_MAX", 50)  # the real cap is 100k; the rule is the same
    log.record(tenant, "key_created", key_id="admin", created="k1")
    for i in range(500):  # an attacker with a key id, or none, denied again and again
        log.record(tenant, "denied", key_id="k1", request_id=f"r{i}", code="role_forbidden")
    log.record(tenant, "tenant_erased", key_id="admin")

    everything = log.read(tenant, limit=1000)
    events = [e.event for e in everything]
    assert "key_created" in events and "tenant_erased" in events
    assert events[0] == "tenant_erased"  # newest first, across both streams
    assert events.count("denied") < 500  # the denials' stream is capped; theirs alone
    assert [e.at for e in everything] == sorted((e.at for e in everything), reverse=True)
