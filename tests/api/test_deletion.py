"""Deletion for good, through the HTTP API on the real stack: a document, then a whole tenant.

After a deletion nothing of the document is found by any query or filter, its points count 0 in
Qdrant, its blobs, record and dedupe entries are gone, a paragraph another document had deferred
to it is that document's again, and a second deletion reports nothing left.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from gateway.keys import ADMIN, INGEST, QUERY
from keel.config import Settings
from pipelines.deps import Deps
from tests.api.conftest import Auth, expect_error, wait_job
from vectorstore.base import Cond, Where

pytestmark = [pytest.mark.stack, pytest.mark.usefixtures("worker")]

SHARED = "The zebrafinch migration window closes on the ninth; quokka rosters are rebuilt every Tuesday."
DOOMED = f"# Rosters\n\n{SHARED}\n"
KEEPER = f"# Rosters\n\n{SHARED}\n\n"  # the same text in other bytes: a duplicate of the doomed one's


async def _upload(api: httpx.AsyncClient, headers: dict[str, str], name: str, text: str) -> dict[str, Any]:
    resp = await api.post("/v1/documents", files={"file": (name, text.encode())}, headers=headers)
    assert resp.status_code == 202, resp.text
    job = await wait_job(api, resp.json()["job_id"], headers)
    assert job["files"][0]["status"] == "ingested", job
    return dict(job["files"][0])


async def _sources(api: httpx.AsyncClient, headers: dict[str, str], question: str, **filters: Any) -> list[str]:
    body: dict[str, Any] = {"question": question}
    if filters:
        body["filters"] = filters
    resp = await api.post("/v1/query", json=body, headers=headers)
    assert resp.status_code == 200, resp.text
    return [c["source"] for c in resp.json()["citations"]]


def _points(deps: Deps, tenant: str, **match: str) -> int:
    where = Where(must=(Cond("tenant", value=tenant), *(Cond(k, value=v) for k, v in match.items())))
    return deps.store.count(deps.settings.collection, where)


def _redis_mentions(r: redis.Redis, tenant: str, needle: str) -> list[str]:
    """Keys of the tenant whose name or value mentions `needle` (audit log aside: it records the deletion)."""
    found = []
    for key in r.scan_iter(match=f"keel:*{{{tenant}}}*", count=1000):
        if key.startswith("keel:audit:"):
            continue
        kind = r.type(key)
        value: object = ""
        if kind == "string":
            value = r.get(key)
        elif kind == "hash":
            value = r.hgetall(key)
        elif kind == "set":
            value = r.smembers(key)
        if needle in key or needle in str(value):
            found.append(key)
    return found


async def test_a_deleted_document_is_gone_from_every_store(
    api: httpx.AsyncClient, settings: Settings, deps: Deps, redis_client: redis.Redis, tenant: str, auth: Auth
) -> None:
    key = auth(tenant)
    doomed = await _upload(api, key, "rosters.md", DOOMED)
    keeper = await _upload(api, key, "warehouse.md", KEEPER)
    assert keeper["duplicates"] == 1 and _points(deps, tenant, doc_id=keeper["doc_id"]) == 0
    doc_id, version = doomed["doc_id"], doomed["version"]
    assert await _sources(api, key, "When does the zebrafinch migration window close?") == ["rosters.md"]
    assert _points(deps, tenant, doc_id=doc_id) > 0

    resp = await api.delete(f"/v1/documents/{doc_id}", headers=key)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["status"] == "deleted" and out["removed"]["points"] >= 1 and out["removed"]["rehomed"] == 1

    question = "When does the zebrafinch migration window close?"
    for filters in ({"doc_ids": [doc_id]}, {"sources": ["rosters.md"]}):
        assert await _sources(api, key, question, **filters) == []
    assert _points(deps, tenant, doc_id=doc_id) == 0
    # the paragraph the keeper had deferred to the doomed copy is the keeper's own now
    assert await _sources(api, key, question) == ["warehouse.md"]
    assert _points(deps, tenant, doc_id=keeper["doc_id"]) == 1
    leftovers = [
        p for p in Path(settings.blob_dir).rglob("*") if p.is_file() and (doc_id in str(p) or version in str(p))
    ]
    assert not leftovers, leftovers
    assert not _redis_mentions(redis_client, tenant, doc_id)

    again = (await api.delete(f"/v1/documents/{doc_id}", headers=key)).json()
    assert again["status"] == "absent" and again["removed"]["points"] == 0
    log = (await api.get("/v1/admin/audit", headers=auth(tenant, roles=[ADMIN]))).json()
    assert [e["detail"]["doc_id"] for e in log if e["event"] == "document_deleted"] == [doc_id]
    # the tenant's other document is untouched, and the source can be ingested again
    assert (await _upload(api, key, "rosters.md", DOOMED))["status"] == "ingested"


async def test_deleting_needs_the_documents_groups(api: httpx.AsyncClient, deps: Deps, tenant: str, auth: Auth) -> None:
    hr = auth(tenant, roles=[INGEST, QUERY], groups=["hr"])
    doc = await _upload(api, hr, "payroll.md", "# Payroll\n\nThe bonus pool of the quokka team is 40,000 euros.\n")
    path = f"/v1/documents/{doc['doc_id']}"
    expect_error(await api.delete(path, headers=auth(tenant, roles=[INGEST])), 403, "document_forbidden")
    expect_error(await api.delete(path, headers=auth(tenant, roles=[QUERY], groups=["hr"])), 403, "role_forbidden")
    expect_error(await api.delete(path), 401, "missing_key")
    # another tenant's key finds nothing there: the same answer as for an id that never existed
    other = (await api.delete(path, headers=auth(tenant + "x", groups=["hr"]))).json()
    assert other["status"] == "absent"
    expect_error(await api.delete("/v1/documents/not-an-id", headers=hr), 400, "bad_input")
    assert _points(deps, tenant, doc_id=doc["doc_id"]) > 0
    assert (await api.delete(path, headers=hr)).json()["status"] == "deleted"


async def test_an_admin_erases_its_tenant(
    api: httpx.AsyncClient, settings: Settings, deps: Deps, redis_client: redis.Redis, tenant: str, auth: Auth
) -> None:
    key, admin = auth(tenant), auth(tenant, roles=[ADMIN])
    await _upload(api, key, "rosters.md", DOOMED)
    await _upload(api, key, "forklifts.md", "# Forklifts\n\nPermits are renewed at the front desk.\n")
    expect_error(await api.post("/v1/admin/tenant/erase", json={"confirm": "other"}, headers=admin), 400, "bad_input")
    expect_error(await api.post("/v1/admin/tenant/erase", json={"confirm": tenant}, headers=key), 403, "role_forbidden")

    resp = await api.post("/v1/admin/tenant/erase", json={"confirm": tenant}, headers=admin)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["documents"] == 2 and out["points"] >= 2 and out["jobs"] == 2 and out["blobs"] >= 2

    assert _points(deps, tenant) == 0
    left = [
        k
        for k in redis_client.scan_iter(match=f"keel:*{{{tenant}}}*")
        if not k.startswith(("keel:audit:", "keel:apikeys:"))
    ]
    assert not left, left  # its limits' counters too
    expect_error(await api.post("/v1/query", json={"question": "quokka rosters?"}, headers=key), 404, "unknown_tenant")
    assert not [p for p in Path(settings.blob_dir).rglob("*") if p.is_file() and f"/{tenant}/" in str(p)]
    assert (await api.get("/v1/jobs/" + out["tenant"], headers=key)).status_code == 404
    again = (await api.post("/v1/admin/tenant/erase", json={"confirm": tenant}, headers=admin)).json()
    assert again["documents"] == 0 and again["points"] == 0
    assert any(e["event"] == "tenant_erased" for e in (await api.get("/v1/admin/audit", headers=admin)).json())


async def test_an_upload_without_a_key_is_refused_before_its_body_is_read(api: httpx.AsyncClient) -> None:
    garbage = b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.md"\r\n\r\nhello'  # no end
    headers = {"Content-Type": "multipart/form-data; boundary=x"}
    expect_error(await api.post("/v1/documents", content=garbage, headers=headers), 401, "missing_key")
