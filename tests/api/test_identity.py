"""Attacks on identity and access, replayed through the HTTP API on the real stack.

Each test is one way a caller could read, write or replay what is not theirs, or crash the edge
with odd input; each must end in a specific 4xx JSON error (or a correct answer), never a 500.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
import redis
from temporalio.client import Client

from gateway.audit import Audit
from gateway.keys import ADMIN, QUERY, KeyStore
from keel.config import Settings
from tests.api.conftest import Auth, expect_error, wait_job
from tests.helpers import ingest

pytestmark = [pytest.mark.stack, pytest.mark.usefixtures("worker")]

SECRET = "# Payroll\n\nThe platypus team bonus pool is 40,000 euros this year.\n"


async def _upload(api: httpx.AsyncClient, headers: dict[str, str], text: str, source: str) -> httpx.Response:
    return await api.post(
        "/v1/documents", files={"file": ("payroll.md", text.encode())}, data={"source": source}, headers=headers
    )


async def test_no_wrong_or_revoked_key_is_401(api: httpx.AsyncClient, redis_client: redis.Redis, sampled: str) -> None:
    q = {"question": "How do I retry failed files?"}
    expect_error(await api.post("/v1/query", json=q), 401, "missing_key")
    expect_error(await api.post("/v1/query", json=q, headers={"Authorization": "Bearer nonsense"}), 401, "invalid_key")
    record, token = KeyStore(redis_client).create(tenant=sampled, roles=[QUERY])
    good = {"Authorization": f"Bearer {token}"}
    forged = {"Authorization": f"Bearer {token[:-4]}AAAA"}  # a real key id with a wrong secret
    expect_error(await api.post("/v1/query", json=q, headers=forged), 401, "invalid_key")
    assert (await api.post("/v1/query", json=q, headers=good)).status_code == 200
    KeyStore(redis_client).revoke(record.key_id)
    err = expect_error(await api.post("/v1/query", json=q, headers=good), 401, "revoked_key")
    assert token not in json.dumps(err)
    denied = [e for e in Audit(redis_client).read(sampled) if e.event == "denied"]
    assert {e.detail["code"] for e in denied} >= {"invalid_key", "revoked_key"}


async def test_tenant_and_groups_come_from_the_key(
    api: httpx.AsyncClient, client: Client, settings: Settings, redis_client: redis.Redis, sampled: str, auth: Auth
) -> None:
    secret = Path(settings.data_dir) / f"{sampled}-payroll.md"
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_text(SECRET)
    await ingest(client, settings, redis_client, [secret], sampled, groups=["hr"])
    q = {"question": "What is the bonus pool for the platypus team?"}

    outsider = (await api.post("/v1/query", json=q, headers={**auth(sampled), "X-Keel-Tenant": "x"})).json()
    assert all("payroll" not in c["source"] for c in outsider["citations"])
    # a header may narrow the key's groups, never add one
    resp = await api.post("/v1/query", json=q, headers={**auth(sampled), "X-Keel-Groups": "hr"})
    expect_error(resp, 403, "group_not_held")
    insider = (await api.post("/v1/query", json=q, headers=auth(sampled, groups=["hr"]))).json()
    assert any("payroll" in c["source"] for c in insider["citations"])
    # another tenant's key sees nothing of this tenant, whatever it sends
    other = (await api.post("/v1/query", json=q, headers=auth(sampled + "x", groups=["hr"]))).status_code
    assert other == 404  # unknown_tenant: the other tenant has no documents


async def test_roles_are_enforced_and_denials_audited(
    api: httpx.AsyncClient, redis_client: redis.Redis, tenant: str, auth: Auth
) -> None:
    query_only = auth(tenant, roles=[QUERY])
    expect_error(await _upload(api, query_only, "# x\n\nhello there\n", "x.md"), 403, "role_forbidden")
    expect_error(await api.get("/v1/admin/audit", headers=query_only), 403, "role_forbidden")
    admin = auth(tenant, roles=[ADMIN])
    log = (await api.get("/v1/admin/audit", headers=admin)).json()
    assert {e["detail"]["code"] for e in log if e["event"] == "denied"} == {"role_forbidden"}
    assert all(e["detail"]["path"] in ("/v1/documents", "/v1/admin/audit") for e in log)


async def test_admin_keys_are_shown_once_and_revocation_holds(
    api: httpx.AsyncClient, redis_client: redis.Redis, tenant: str, auth: Auth
) -> None:
    admin = auth(tenant, roles=[ADMIN])
    created = (await api.post("/v1/admin/keys", json={"roles": ["query"], "groups": ["eng"]}, headers=admin)).json()
    token = created["api_key"]
    assert token.startswith("keel_") and created["tenant"] == tenant and len(token) > 50
    raw = json.dumps(redis_client.hgetall(f"keel:apikey:{created['key_id']}"))
    assert token not in raw  # only a hash is stored
    listed = (await api.get("/v1/admin/keys", headers=admin)).json()
    assert created["key_id"] in {k["key_id"] for k in listed} and all("api_key" not in k for k in listed)
    resp = await api.post("/v1/admin/keys", json={"roles": ["root"]}, headers=admin)
    expect_error(resp, 400, "bad_input")
    assert (await api.delete(f"/v1/admin/keys/{created['key_id']}", headers=admin)).status_code == 200
    expect_error(await api.get("/v1/jobs/x", headers={"Authorization": f"Bearer {token}"}), 401, "revoked_key")
    other_admin = auth(tenant + "x", roles=[ADMIN])
    expect_error(await api.delete(f"/v1/admin/keys/{created['key_id']}", headers=other_admin), 404, "not_found")
    events = [e["event"] for e in (await api.get("/v1/admin/audit", headers=admin)).json()]
    assert "key_created" in events and "key_revoked" in events


async def test_writes_cannot_escalate_or_widen_access(api: httpx.AsyncClient, tenant: str, auth: Auth) -> None:
    hr = auth(tenant, groups=["hr"])
    resp = await _upload(api, hr, SECRET, "payroll")
    assert resp.status_code == 202, resp.text
    await wait_job(api, resp.json()["job_id"], hr)

    nobody = auth(tenant)  # no groups: may not overwrite an HR-only document
    expect_error(await _upload(api, nobody, "# Payroll\n\nnothing to see\n", "payroll"), 403, "document_forbidden")
    expect_error(await _upload(api, {**nobody, "X-Keel-Groups": "hr"}, "# x\n\ny\n", "other"), 403, "group_not_held")
    wider = auth(tenant, groups=["hr", "eng"])  # holds hr, but the new version would reach eng too
    expect_error(await _upload(api, wider, "# Payroll\n\nwider\n", "payroll"), 409, "widens_access")
    same = await _upload(api, {**wider, "X-Keel-Groups": "hr"}, "# Payroll\n\nThe pool is 41,000.\n", "payroll")
    assert same.status_code == 202
    job = await wait_job(api, same.json()["job_id"], hr)
    assert job["files"][0]["status"] == "ingested"


async def test_reused_correlation_ids_never_fail(
    api: httpx.AsyncClient, settings: Settings, sampled: str, auth: Auth
) -> None:
    headers = {**auth(sampled), "X-Request-ID": "same-id"}
    q = {"question": "How do I retry failed files?"}
    # room for all 50 to wait their turn: what is tested is the shared id, not the process's capacity
    settings.query_queue, settings.query_admission_wait_ms = 64, 120_000
    try:
        answers = await asyncio.gather(*(api.post("/v1/query", json=q, headers=headers) for _ in range(50)))
    finally:
        settings.query_queue, settings.query_admission_wait_ms = 16, 1500
    assert [r.status_code for r in answers] == [200] * 50
    ids = {r.json()["request_id"] for r in answers}
    assert len(ids) == 50 and "same-id" not in ids
    assert {r.json()["correlation_id"] for r in answers} == {"same-id"}


async def test_odd_input_is_a_specific_4xx(
    api: httpx.AsyncClient, settings: Settings, sampled: str, auth: Auth
) -> None:
    h = {**auth(sampled), "Content-Type": "application/json"}
    lone = b'{"question": "why \\ud800?"}'
    expect_error(await api.post("/v1/query", content=lone, headers=h), 400, "invalid_text")
    for bound in (b"NaN", b"1e309", b"-Infinity"):
        body = b'{"question": "q", "filters": {"ingested_after": ' + bound + b"}}"
        expect_error(await api.post("/v1/query", content=body, headers=h), 400, "invalid_filter")
    huge = b'{"question": "' + b"a" * (settings.max_json_body_bytes + 10) + b'"}'
    expect_error(await api.post("/v1/query", content=huge, headers=h), 413, "body_too_large")

    async def chunks() -> object:  # no Content-Length: refused as it streams past the limit
        for _ in range(40):
            yield b"a" * 65536

    streamed = await api.post("/v1/query", content=chunks(), headers=h)  # type: ignore[arg-type]
    expect_error(streamed, 413, "body_too_large")
    stream = await api.post("/v1/query/stream", content=lone, headers=h)
    expect_error(stream, 400, "invalid_text")


async def test_a_stream_cannot_be_replayed_by_another_caller(
    api: httpx.AsyncClient, client: Client, settings: Settings, redis_client: redis.Redis, sampled: str, auth: Auth
) -> None:
    """The attack of the issue: a no-group caller streams with the victim's request id."""
    secret = Path(settings.data_dir) / f"{sampled}-stream-payroll.md"
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_text(SECRET)
    await ingest(client, settings, redis_client, [secret], sampled, groups=["hr"])
    q = {"question": "What is the bonus pool for the platypus team?"}
    victim = await api.post("/v1/query/stream", json=q, headers=auth(sampled, groups=["hr"]))
    victim_id = victim.headers["X-Request-ID"]
    assert "payroll" in victim.text

    replay = await api.post("/v1/query/stream", json=q, headers={**auth(sampled), "X-Request-ID": victim_id})
    assert replay.status_code == 200 and replay.headers["X-Request-ID"] != victim_id
    assert "payroll" not in replay.text and "40,000" not in replay.text
