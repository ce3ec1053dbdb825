"""Pseudonyms end to end (KEEL_PII_PSEUDONYMS): names are the tenant's tokens at rest and in the
workflows, the question finds them by their tokens, and the reader sees names again."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import pytest_asyncio
import redis
from temporalio.client import Client

from api.main import create_app
from gateway.keys import ADMIN
from guardrails.pseudonyms import tokens_in
from infra.worker import build_workers, run_workers
from keel.config import Settings, get_settings
from pipelines.deps import Deps, build_vault
from stores.pii_vault import PiiVault
from tests.api.conftest import Auth, stream_events, wait_job
from tests.api.test_pii_at_rest import _files_text, _redis_text
from tests.conftest import Services
from vectorstore.base import Cond, Where

pytestmark = [pytest.mark.stack]
NOTE = b"# Budget approvals\n\nDana Reyes approved the Q3 budget on 3 July. Reach Dana Reyes at dana@example.com.\n"


@pytest_asyncio.fixture
async def protected(
    client: Client, settings: Settings, redis_client: redis.Redis, deps: Deps
) -> AsyncIterator[tuple[httpx.AsyncClient, PiiVault]]:
    suffix = uuid.uuid4().hex[:6]
    wired = settings.model_copy(
        update={"pii_pseudonyms": True, "query_task_queue": f"pii-q-{suffix}", "ingest_task_queue": f"pii-i-{suffix}"}
    )
    vault = build_vault(wired, redis_client)
    app = create_app(indexes=deps.indexes)
    app.dependency_overrides[get_settings] = lambda: wired
    app.state.temporal, app.state.redis = client, redis_client
    with ThreadPoolExecutor(max_workers=6) as executor, ThreadPoolExecutor(max_workers=4) as queries:
        workers = build_workers(client, wired, dataclasses.replace(deps, vault=vault, offload=None), executor, queries)
        async with run_workers(workers):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://keel", timeout=60) as http:
                yield http, vault


async def test_names_are_tokens_at_rest_and_names_for_their_reader(
    protected: tuple[httpx.AsyncClient, PiiVault],
    deps: Deps,
    tenant: str,
    auth: Auth,
    settings: Settings,
    services: Services,
    redis_client: redis.Redis,
) -> None:
    api, vault = protected
    key = auth(tenant)
    resp = await api.post("/v1/documents", files={"file": ("budget.md", NOTE, "text/markdown")}, headers=key)
    assert resp.status_code == 202, resp.text
    job = await wait_job(api, resp.json()["job_id"], key)
    doc_id = job["files"][0]["doc_id"]

    # At rest, the index holds tokens only.
    index = deps.indexes.active(tenant)
    hits, _ = deps.store.scroll(index.collection, Where(must=(Cond("tenant", value=tenant),)), 50)
    stored = " ".join(str(h.payload.get("text", "")) for h in hits)
    assert "Dana" not in stored and "example.com" not in stored and tokens_in(stored)

    # The reader sees the name, in the answer and its citations.
    said = (await api.post("/v1/query", json={"question": "Who approved the Q3 budget?"}, headers=key)).json()
    assert "Dana Reyes approved the Q3 budget" in said["answer"] and not tokens_in(said["answer"])
    assert not any(tokens_in(c["snippet"]) for c in said["citations"])

    # A question that names the person finds the document by the name's token.
    named = await api.post("/v1/query", json={"question": "What did Dana Reyes approve?", "cache": False}, headers=key)
    body = named.json()
    assert body["citations"] and body["citations"][0]["doc_id"] == doc_id and "Dana Reyes" in body["answer"]

    # Streamed, every piece is revealed too.
    events = await stream_events(api, key, "Who approved the Q3 budget?")
    text = "".join(str(d) for e, d in events if e == "token")
    assert "Dana Reyes" in text and not tokens_in(text) and not tokens_in(events[-1][1]["answer"])

    # Nowhere at rest are the originals readable: the vault holds them sealed with the tenant's key,
    # and Redis, Temporal's histories, the index's files and the blobs hold tokens.
    places = {
        "redis": _redis_text(redis_client).encode(),
        "temporal": b"".join(p.read_bytes() for p in services.data_dir.glob("temporal.sqlite*")),
        "qdrant": _files_text(settings.qdrant_path),
        "blobs": _files_text(settings.blob_dir),
    }
    for seed in (b"Dana Reyes", b"dana@example.com", b"Reyes"):
        assert not [name for name, data in places.items() if seed in data], seed
    assert vault.reveal(tenant, tokens_in(stored))  # and yet the vault gives them back by token

    # The document's deletion takes the originals with it.
    assert (await api.delete(f"/v1/documents/{doc_id}", headers=key)).status_code == 200
    assert vault.reveal(tenant, tokens_in(stored)) == {}


async def test_a_tenant_chooses_per_entity_type(
    protected: tuple[httpx.AsyncClient, PiiVault], deps: Deps, tenant: str, auth: Auth
) -> None:
    api, _ = protected
    admin, key = auth(tenant, roles=(ADMIN,)), auth(tenant)
    bad = await api.put("/v1/admin/guard", json={"pii": {"SHOE_SIZE": "keep"}}, headers=admin)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_input"
    bad = await api.put("/v1/admin/guard", json={"pii": {"PERSON": "publish"}}, headers=admin)
    assert bad.status_code == 422
    set_ = await api.put("/v1/admin/guard", json={"pii": {"EMAIL_ADDRESS": "redact"}}, headers=admin)
    assert set_.status_code == 200 and set_.json()["pii"] == {"EMAIL_ADDRESS": "redact"}

    resp = await api.post("/v1/documents", files={"file": ("budget.md", NOTE, "text/markdown")}, headers=key)
    await wait_job(api, resp.json()["job_id"], key)
    index = deps.indexes.active(tenant)
    hits, _ = deps.store.scroll(index.collection, Where(must=(Cond("tenant", value=tenant),)), 50)
    stored = " ".join(str(h.payload.get("text", "")) for h in hits)
    assert "<EMAIL_ADDRESS>" in stored and "dana@example.com" not in stored  # redacted: no token, no vault entry
    assert [t for t in tokens_in(stored) if t.startswith("PERSON_")]  # names still pseudonymised
    said = (await api.post("/v1/query", json={"question": "Who approved the Q3 budget?"}, headers=key)).json()
    assert "Dana Reyes" in said["answer"]
