"""The HTTP layer end to end: upload -> job -> document, and JSON errors with codes and request ids."""

from __future__ import annotations

import httpx
import pytest
import redis

from infra.services import free_port
from keel.config import Settings
from pipelines.deps import Deps
from tests.api.conftest import Auth, expect_error, wait_job
from tests.conftest import SAMPLES
from tests.helpers import docx_bomb

pytestmark = [pytest.mark.stack, pytest.mark.usefixtures("worker")]


async def test_upload_starts_a_job_that_ingests_the_document(
    api: httpx.AsyncClient, deps: Deps, tenant: str, auth: Auth
) -> None:
    files = {"file": ("overview.md", (SAMPLES / "keel-overview.md").read_bytes(), "text/markdown")}
    key = auth(tenant)
    resp = await api.post("/v1/documents", files=files, headers={**key, "X-Request-ID": "req-42"})
    assert resp.status_code == 202, resp.text
    accepted = resp.json()
    # the caller's id is a correlation id only; the server names the request itself
    assert accepted["correlation_id"] == "req-42" and accepted["request_id"] != "req-42"
    assert resp.headers["X-Correlation-ID"] == "req-42" and resp.headers["X-Request-ID"] == accepted["request_id"]
    assert accepted["status_url"] == f"/v1/jobs/{accepted['job_id']}"
    job = await wait_job(api, accepted["job_id"], key)
    (result,) = job["files"]
    assert result["status"] == "ingested" and result["chunks"] >= 1 and result["source"] == "overview.md"

    # another tenant cannot see the job
    expect_error(await api.get(f"/v1/jobs/{accepted['job_id']}", headers=auth(tenant + "x")), 404, "not_found")


async def test_a_document_is_read_by_the_keys_that_may_read_it_only(
    api: httpx.AsyncClient, tenant: str, auth: Auth
) -> None:
    writer = auth(tenant, groups=["hr"])
    text = "# Rosters\n\nNight shifts rotate weekly.\n\n## Pay\n\nNight shifts pay a quarter more.\n"
    files = {"file": ("rosters.md", text.encode(), "text/markdown")}
    resp = await api.post("/v1/documents", files=files, data={"groups": "hr"}, headers=writer)
    job = await wait_job(api, resp.json()["job_id"], writer)
    doc_id = job["files"][0]["doc_id"]

    read = await api.get(f"/v1/documents/{doc_id}", headers=auth(tenant, roles=["query"], groups=["hr"]))
    assert read.status_code == 200, read.text
    doc = read.json()
    assert doc["source"] == "rosters.md" and not doc["truncated"]
    assert [c["index"] for c in doc["chunks"]] == sorted(c["index"] for c in doc["chunks"])
    assert "quarter more" in " ".join(c["text"] for c in doc["chunks"])
    # outside the group, or another tenant: as if it did not exist
    expect_error(
        await api.get(f"/v1/documents/{doc_id}", headers=auth(tenant, roles=["query"])), 404, "document_not_found"
    )
    expect_error(await api.get(f"/v1/documents/{doc_id}", headers=auth(tenant + "x")), 404, "unknown_tenant")
    expect_error(await api.get("/v1/documents/not-an-id", headers=writer), 400, "bad_input")
    expect_error(
        await api.get(f"/v1/documents/{doc_id}", headers=auth(tenant, roles=["ingest"])), 403, "role_forbidden"
    )


async def test_corrupt_upload_fails_in_its_job_with_a_code(api: httpx.AsyncClient, tenant: str, auth: Auth) -> None:
    files = {"file": ("scan.pdf", b"%PDF-1.5\nnot really", "application/pdf")}
    key = auth(tenant)
    resp = await api.post("/v1/documents", files=files, headers=key)
    job = await wait_job(api, resp.json()["job_id"], key)
    (result,) = job["files"]
    assert result["status"] == "failed" and result["code"] == "corrupt_file" and result["temporal_ui_url"]


async def test_a_decompression_bomb_fails_as_too_large_and_the_server_serves_on(
    api: httpx.AsyncClient, redis_client: redis.Redis, tenant: str, auth: Auth
) -> None:
    bomb = docx_bomb(400 * 1024 * 1024)  # 400 MB of XML from a few hundred KB upload
    key = auth(tenant)
    resp = await api.post("/v1/documents", files={"file": ("report.docx", bomb)}, headers=key)
    assert resp.status_code == 202, resp.text
    job = await wait_job(api, resp.json()["job_id"], key)
    (result,) = job["files"]
    assert result["status"] == "failed" and result["code"] == "file_too_large"
    assert (await api.get("/healthz")).status_code == 200 and redis_client.ping()


@pytest.mark.parametrize(
    ("name", "data", "status", "code"),
    [
        ("../../etc/passwd", b"x", 400, "unsafe_name"),
        ("notes.txt", b"", 400, "empty_file"),
        ("diagram.png", b"\x89PNG", 415, "unsupported_type"),
    ],
)
async def test_bad_uploads_are_refused_with_specific_codes(
    api: httpx.AsyncClient, tenant: str, name: str, data: bytes, status: int, code: str, auth: Auth
) -> None:
    resp = await api.post("/v1/documents", files={"file": (name, data)}, headers=auth(tenant))
    expect_error(resp, status, code)


async def test_oversized_upload_is_refused(api: httpx.AsyncClient, settings: Settings, tenant: str, auth: Auth) -> None:
    settings.max_upload_bytes = 1000
    try:
        resp = await api.post("/v1/documents", files={"file": ("big.txt", b"a" * 5000)}, headers=auth(tenant))
    finally:
        settings.max_upload_bytes = 50 * 1024 * 1024
    expect_error(resp, 413, "file_too_large")


async def test_missing_or_invalid_key(api: httpx.AsyncClient) -> None:
    files = {"file": ("a.md", b"# hi")}
    expect_error(await api.post("/v1/documents", files=files), 401, "missing_key")
    bad = {"Authorization": "Bearer keel_0123456789ab_not-a-real-secret"}
    expect_error(await api.post("/v1/documents", files=files, headers=bad), 401, "invalid_key")
    expect_error(await api.post("/v1/documents", files=files, headers={"Authorization": "Basic x"}), 401, "invalid_key")


async def test_dead_redis_is_a_503_with_a_reason(api: httpx.AsyncClient, tenant: str, auth: Auth) -> None:
    app = api._transport.app  # type: ignore[attr-defined]
    app.state.redis = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    err = expect_error(await api.get("/v1/jobs/x", headers=auth(tenant)), 503, "redis_unavailable")
    assert "unreachable" in err["message"]


async def test_dead_temporal_is_a_503_with_a_reason(api: httpx.AsyncClient, tenant: str, auth: Auth) -> None:
    app = api._transport.app  # type: ignore[attr-defined]
    app.state.temporal = None
    resp = await api.post("/v1/documents", files={"file": ("a.md", b"# hi")}, headers=auth(tenant))
    expect_error(resp, 503, "temporal_unavailable")


async def test_ready_only_while_redis_and_temporal_answer(api: httpx.AsyncClient, redis_client: redis.Redis) -> None:
    assert (await api.get("/readyz")).json() == {"status": "ready"}
    app = api._transport.app  # type: ignore[attr-defined]
    kept = app.state.redis
    app.state.redis = redis.Redis(port=free_port(), socket_connect_timeout=0.5)  # nothing listens there
    try:
        down = await api.get("/readyz")
        assert down.status_code == 503 and down.json()["error"]["code"] == "redis_unavailable"
        assert int(down.headers["retry-after"]) >= 1
    finally:
        app.state.redis = kept
    assert (await api.get("/healthz")).status_code == 200  # liveness says nothing of dependencies
