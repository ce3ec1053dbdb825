"""/v1/admin/index: a tenant admin reads its index, starts, watches and cancels a migration; every
mistake is a specific 4xx with a code and the request id."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from gateway.keys import ADMIN, INGEST, QUERY
from tests.api.conftest import Auth, expect_error

pytestmark = [pytest.mark.stack, pytest.mark.usefixtures("worker")]

TARGET = "default-w128"


async def _latest(api: httpx.AsyncClient, admin: dict[str, str], states: set[str], timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        resp = await api.get("/v1/admin/index/migrations/latest", headers=admin)
        if resp.status_code == 200 and resp.json().get("state") in states:
            record: dict = resp.json()
            return record
        assert time.monotonic() < deadline, f"migration did not reach {states}: {resp.text}"
        await asyncio.sleep(0.2)


async def test_index_routes_refuse_bad_requests_specifically(api: httpx.AsyncClient, tenant: str, auth: Auth) -> None:
    admin = auth(tenant, roles=(ADMIN,))
    expect_error(await api.get("/v1/admin/index", headers=auth(tenant, roles=(INGEST, QUERY))), 403, "role_forbidden")

    state = await api.get("/v1/admin/index", headers=admin)
    assert state.status_code == 200, state.text
    assert state.json()["index"]["active"] == "default" and TARGET in state.json()["encoders"]

    post = "/v1/admin/index/migrations"
    expect_error(await api.post(post, headers=admin, json={"to": "no-such-model"}), 400, "unknown_encoder")
    expect_error(await api.post(post, headers=admin, json={"to": "default"}), 400, "already_active")
    bad_golden = {"to": TARGET, "golden": [{"query": "  ", "relevant": {"a": 1}}]}
    expect_error(await api.post(post, headers=admin, json=bad_golden), 400, "invalid_golden")
    expect_error(await api.post(post, headers=admin, json={"to": TARGET, "max_drop": 3}), 422, "invalid_request")
    expect_error(await api.get("/v1/admin/index/migrations/latest", headers=admin), 404, "migration_not_found")
    expect_error(await api.post(f"{post}/rollback", headers=admin), 409, "nothing_to_roll_back")
    expect_error(await api.post(f"{post}/cancel", headers=admin), 404, "migration_not_found")
    expect_error(await api.post(f"{post}/explode", headers=admin), 400, "bad_input")


async def test_a_migration_is_one_at_a_time_and_cancel_changes_nothing_users_read(
    api: httpx.AsyncClient, sampled: str, auth: Auth
) -> None:
    admin = auth(sampled, roles=(ADMIN,))
    post = "/v1/admin/index/migrations"
    # auto_flip off: the migration waits for approval after its gate, so it is still running below.
    started = await api.post(post, headers=admin, json={"to": TARGET, "auto_flip": False, "shadow_wait_s": 0})
    assert started.status_code == 202, started.text
    assert started.json()["migration_id"] and started.json()["workflow_id"].startswith("migrate/")

    expect_error(await api.post(post, headers=admin, json={"to": TARGET}), 409, "migration_conflict")
    waiting = await _latest(api, admin, {"awaiting_approval"})
    assert waiting["migration_id"] == started.json()["migration_id"]
    assert int(waiting["chunks_done"]) > 0 and waiting["index"]["side"] == TARGET

    # Another tenant's admin sees none of it.
    other = auth(f"{sampled}-other", roles=(ADMIN,))
    expect_error(await api.get("/v1/admin/index/migrations/latest", headers=other), 404, "migration_not_found")

    assert (await api.post(f"{post}/cancel", headers=admin)).status_code == 202
    ended = await _latest(api, admin, {"cancelled"})
    assert ended["index"]["active"] == "default" and not ended["index"]["side"]
    audit = (await api.get("/v1/admin/audit", headers=admin)).json()
    events = {e["event"] for e in audit}
    assert {"index_migration_started", "index_migration_cancelled"} <= events
