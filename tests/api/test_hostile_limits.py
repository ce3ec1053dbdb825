"""Every authenticated route is limited: uploads by count and kilobytes, feedback, admin and the
codec, per key and per tenant; a tenant with no limits of its own has the deployment's default."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from gateway.keys import ADMIN, INGEST, QUERY
from keel.config import Settings
from tests.api.conftest import Auth, expect_error

pytestmark = [pytest.mark.stack, pytest.mark.usefixtures("worker")]


@pytest.fixture
def tight(settings: Settings) -> Iterator[Settings]:
    saved = (settings.key_route_limits, settings.tenant_route_limits)
    settings.key_route_limits = {"ingest": {"rpm": 600, "tpm": 64}, "feedback": {"rpm": 6}, "admin": {"rpm": 6}}
    settings.tenant_route_limits = {"admin": {"rpm": 60}}
    yield settings
    settings.key_route_limits, settings.tenant_route_limits = saved


async def test_admin_routes_are_limited_per_key_and_per_tenant(
    api: httpx.AsyncClient, tenant: str, auth: Auth, tight: Settings
) -> None:
    # rpm 6 with GCRA's 10 s burst: one request at once, then one every 10 s.
    first, second = auth(tenant, roles=[ADMIN]), auth(tenant, roles=[ADMIN])
    assert (await api.get("/v1/admin/keys", headers=first)).status_code == 200
    refused = await api.get("/v1/admin/keys", headers=first)
    expect_error(refused, 429, "rate_limited")
    assert int(refused.headers["Retry-After"]) >= 1
    # Another key of the same tenant has its own allowance, within the tenant's.
    assert (await api.get("/v1/admin/audit", headers=second)).status_code == 200
    expect_error(await api.post("/codec/decode", content=b"{}", headers=second), 429, "rate_limited")


async def test_feedback_is_limited_apart_from_queries(
    api: httpx.AsyncClient, sampled: str, auth: Auth, tight: Settings
) -> None:
    key = auth(sampled, roles=[QUERY])
    asked = await api.post("/v1/query", json={"question": "How do I retry failed files?"}, headers=key)
    rid = asked.json()["request_id"]
    assert (await api.post("/v1/feedback", json={"request_id": rid, "rating": "up"}, headers=key)).status_code == 200
    again = await api.post("/v1/feedback", json={"request_id": rid, "rating": "down"}, headers=key)
    expect_error(again, 429, "rate_limited")
    # Queries are counted on their own: feedback's refusals cost them nothing.
    assert (await api.post("/v1/query", json={"question": "What is Keel?"}, headers=key)).status_code == 200


async def test_uploads_are_limited_by_their_kilobytes(
    api: httpx.AsyncClient, tenant: str, auth: Auth, tight: Settings
) -> None:
    key = auth(tenant, roles=[INGEST])
    big = {"file": ("a.md", b"# A\n\n" + b"word " * 20_000)}  # ~100 KB: past 64 KB a minute at once
    err = expect_error(await api.post("/v1/documents", files=big, headers=key), 400, "exceeds_limit")
    assert "KB of uploads" in err["message"]
    small = {"file": ("b.md", b"# B\n\nA short document about budgets.\n")}
    assert (await api.post("/v1/documents", files=small, headers=key)).status_code == 202


async def test_a_tenant_without_limits_of_its_own_has_the_default(
    api: httpx.AsyncClient, sampled: str, auth: Auth
) -> None:
    resp = await api.post("/v1/query", json={"question": "How do I retry failed files?"}, headers=auth(sampled))
    assert resp.status_code == 200
    assert '"tenant-rpm";q=3000' in resp.headers["RateLimit-Policy"]
