"""A worker killed with SIGKILL in the middle of a batch, then restarted, finishes the batch with
every document present exactly once."""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path

import pytest

from app.ingest import stage, start_batch
from index.visibility import NEVER, visible_at
from keel import ids
from stores import redis as redis_store
from stores.keys import doc_key, generation_key
from temporal.client import connect
from tests.conftest import Services, make_settings
from tests.helpers import start_keel_process
from vectorstore.base import Cond, Where
from vectorstore.edge import EdgeStore
from workflows.ingest_batch import IngestBatchWorkflow

pytestmark = [pytest.mark.slow, pytest.mark.stack]

TOPICS = [
    "insulin",
    "glaciers",
    "compilers",
    "vaccines",
    "tides",
    "lasers",
    "enzymes",
    "volcanoes",
    "bridges",
    "neurons",
]


def _corpus(root: Path, n: int) -> list[Path]:
    root.mkdir()
    paths = []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        body = " ".join(
            f"Study {i}.{j} measured how {topic} respond to condition {j * 7 + i} across {i + j + 3} trials."
            for j in range(12)
        )
        path = root / f"doc-{i:03d}.md"
        path.write_text(f"# {topic.title()} report {i}\n\n{body}\n\n## Methods {i}\n\n{body[::-1][:300]}\n")
        paths.append(path)
    return paths


async def test_sigkill_mid_batch_then_restart_finishes_exactly_once(services: Services, tmp_path: Path) -> None:
    settings = make_settings(
        services, tmp_path / "data", ingest_task_queue=f"crash-{uuid.uuid4().hex[:6]}", batch_window=4
    )
    tenant = "crash"
    r = redis_store.connect(settings)
    paths = _corpus(tmp_path / "corpus", 24)
    log = tmp_path / "worker.log"
    worker = start_keel_process("infra.worker", settings, log)
    client = await connect(settings)
    staged = stage(settings, [tmp_path / "corpus"], tenant)
    handle = await start_batch(client, settings, r, staged, tenant, [])

    while (await handle.query(IngestBatchWorkflow.progress)).counters.done < 6:
        await asyncio.sleep(0.2)
    worker.send_signal(signal.SIGKILL)  # mid-batch: documents in flight, points half-written
    worker.wait()

    worker = start_keel_process("infra.worker", settings, log)
    try:
        counters = await asyncio.wait_for(handle.result(), timeout=300)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
    assert (counters.total, counters.ingested, counters.failed) == (24, 24, 0)

    store = EdgeStore(settings.qdrant_path)  # the worker is gone, so the test may open its shard
    store.ensure_collection(settings.collection, 384)
    gen = int(r.get(generation_key(tenant)) or 0)
    total = 0
    for path in paths:
        doc_id = ids.document_id(tenant, str(path))
        record = r.hgetall(doc_key(tenant, doc_id))
        chunks = int(record["chunks"])
        mine = Where(must=(Cond("tenant", value=tenant), Cond("doc_id", value=doc_id)))
        assert chunks >= 1
        assert store.count(settings.collection, mine) == chunks, path.name  # exactly once: no doubles, no gaps
        visible = visible_at(tenant, gen, []).and_(Cond("doc_id", value=doc_id))
        assert store.count(settings.collection, visible) == chunks
        total += chunks
    assert store.count(settings.collection, Where(must=(Cond("tenant", value=tenant),))) == total
    staged_left = Where(must=(Cond("tenant", value=tenant), Cond("visible_from", gte=NEVER)))
    assert store.count(settings.collection, staged_left) == 0
    store.close()
