"""A worker killed with SIGKILL in the middle of a backfill, then restarted, resumes from its last
heartbeated page and finishes with every chunk in the new index exactly once."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from app import index as migrations
from app.ingest import stage, start_batch
from contracts.index import CANCELLED, FAILED, FLIPPED
from index.active import read_state
from index.visibility import visible_at
from stores import redis as redis_store
from stores.keys import generation_key, index_key
from temporal.client import connect
from tests.conftest import Services, make_settings
from tests.helpers import start_keel_process
from tests.workflows.test_worker_crash import _corpus
from vectorstore.base import Cond, Where
from vectorstore.edge import EdgeStore

pytestmark = [pytest.mark.slow, pytest.mark.stack]

TARGET = "default-w128"
ENDS = (FLIPPED, FAILED, CANCELLED)


async def test_sigkill_mid_backfill_then_restart_copies_every_chunk_once(services: Services, tmp_path: Path) -> None:
    settings = make_settings(
        services,
        tmp_path / "data",
        ingest_task_queue=f"mig-crash-{uuid.uuid4().hex[:6]}",
        query_task_queue=f"mig-crash-q-{uuid.uuid4().hex[:6]}",
        backfill_page=4,  # many small pages, so the kill lands between two of them
    )
    tenant = f"migcrash{uuid.uuid4().hex[:6]}"
    r = redis_store.connect(settings)
    _corpus(tmp_path / "corpus", 24)
    log = tmp_path / "worker.log"
    worker = start_keel_process("infra.worker", settings, log)
    try:
        client = await connect(settings)
        staged = stage(settings, [tmp_path / "corpus"], tenant)
        batch = await start_batch(client, settings, r, staged, tenant, [])
        assert (await asyncio.wait_for(batch.result(), timeout=300)).ingested == 24

        migration_id, _ = await migrations.start_migration(
            client, settings, r, tenant, TARGET, shadow_wait_s=0, retention_s=3600, force=True
        )  # forced: no golden set here, and the gate is not what this test is about
        deadline = time.monotonic() + 300
        while int(migrations.migration_record(settings, r, tenant, migration_id).get("chunks_done", 0)) < 12:
            assert time.monotonic() < deadline, "the backfill never got going"
            await asyncio.sleep(0.1)
        worker.send_signal(signal.SIGKILL)  # mid-backfill: a page embedded, maybe half-written
        worker.wait()
        worker = start_keel_process("infra.worker", settings, tmp_path / "worker-2.log")
        deadline = time.monotonic() + 400
        while (state := migrations.migration_record(settings, r, tenant, migration_id)["state"]) not in ENDS:
            assert time.monotonic() < deadline, f"the migration is still {state}"
            await asyncio.sleep(0.2)
        assert state == FLIPPED  # the old index stays, retained for an hour: it is compared below
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)

    record = migrations.migration_record(settings, r, tenant, migration_id)
    assert int(record["backfill_attempts"]) >= 2, "the kill did not interrupt the backfill"
    state = read_state(r, tenant)
    assert state.active == TARGET and state.previous == "default"

    new_collection = f"{settings.collection}-{TARGET}"
    store = EdgeStore(settings.qdrant_path)  # the worker is gone, so the test may open the shards
    for collection in (settings.collection, new_collection):
        store.ensure_collection(collection, 384)
    gen = int(r.get(generation_key(tenant)) or 0)
    visible = visible_at(tenant, gen, [])
    old = store.scroll(settings.collection, visible, limit=10_000)[0]
    new = store.scroll(new_collection, Where(must=(Cond("tenant", value=tenant),)), limit=10_000)[0]
    key = lambda h: (h.payload["doc_id"], h.payload["chunk_index"])  # noqa: E731
    copies = Counter(key(h) for h in new)
    assert old and set(copies) == {key(h) for h in old}  # nothing missing, nothing extra
    assert max(copies.values()) == 1  # and nothing twice
    versions = {h.payload["embedding_version"] for h in new}
    assert len(versions) == 1 and versions != {h.payload["embedding_version"] for h in old}
    assert {h.payload["text"] for h in new} == {h.payload["text"] for h in old}
    store.close()
    r.delete(index_key(tenant))  # its worker is gone: the shared Redis should not say it uses the side index
