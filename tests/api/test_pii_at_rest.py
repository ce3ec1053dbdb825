"""Nothing sensitive lingers: after a document with PII is ingested over HTTP and a question with
PII is asked, none of the seeded strings is readable in Temporal's database, Redis, the blob store
the traces or the logs."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx
import pytest
import redis
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from keel.config import Settings
from tests.api.conftest import Auth
from tests.conftest import Services

pytestmark = [pytest.mark.stack, pytest.mark.usefixtures("worker")]

EMAIL, CARD, SSN = "jane.roe@example.org", "4111 1111 1111 1111", "536-22-1198"
DOC = f"""# Expense policy

Refunds for travel are paid within 30 days. Questions go to {EMAIL}.
The corporate card {CARD} is for travel only; payroll keeps SSN {SSN} on file.
"""


def _redis_text(r: redis.Redis) -> str:
    parts: list[str] = []
    for key in r.scan_iter(count=1000):
        kind = r.type(key)
        if kind == "string":
            try:
                parts.append(str(r.get(key)))
            except UnicodeDecodeError:  # a binary value (none of Keel's, but be safe)
                continue
        elif kind == "hash":
            parts.append(str(r.hgetall(key)))
        elif kind == "set":
            parts.append(str(r.smembers(key)))
        elif kind == "zset":
            parts.append(str(r.zrange(key, 0, -1)))
        elif kind == "list":
            parts.append(str(r.lrange(key, 0, -1)))
        elif kind == "stream":
            parts.append(str(r.xrange(key)))
        parts.append(str(key))
    return "\n".join(parts)


def _files_text(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file() and p.stat().st_size < 50_000_000)


async def test_no_seeded_pii_is_readable_at_rest(
    api: httpx.AsyncClient,
    settings: Settings,
    services: Services,
    redis_client: redis.Redis,
    spans: InMemorySpanExporter,
    tenant: str,
    auth: Auth,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # every log record of the API, the workers and the libraries
    key = auth(tenant)
    resp = await api.post("/v1/documents", files={"file": ("expenses.md", DOC.encode())}, headers=key)
    assert resp.status_code == 202, resp.text
    for _ in range(300):
        job = (await api.get(f"/v1/jobs/{resp.json()['job_id']}", headers=key)).json()
        if job["status"] == "completed":
            break
        await asyncio.sleep(0.1)
    assert job["files"][0]["status"] == "ingested", job

    question = f"When are travel refunds paid? I am {EMAIL}, card {CARD}."
    answer = (await api.post("/v1/query", json={"question": question}, headers=key)).json()
    assert answer["citations"], answer
    assert answer["question_pii"].get("EMAIL_ADDRESS") == 1 and answer["question_pii"].get("CREDIT_CARD") == 1

    places = {
        "temporal": b"".join(p.read_bytes() for p in services.data_dir.glob("temporal.sqlite*")),
        "redis": _redis_text(redis_client).encode(),
        "blobs": _files_text(settings.blob_dir),
        "qdrant": _files_text(settings.qdrant_path),
        "traces": str([s.attributes for s in spans.get_finished_spans()]).encode(),
        "logs": caplog.text.encode() + _files_text(services.data_dir / "logs"),
    }
    for seed in (EMAIL, CARD, SSN):
        found = [name for name, data in places.items() if seed.encode() in data]
        assert not found, f"{seed!r} is readable in {found}"
