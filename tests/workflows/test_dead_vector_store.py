"""A worker whose Qdrant server is unreachable: each document is retried, then recorded as failed
with `vector_store_unavailable`, and the batch itself completes."""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import pytest

from app.ingest import stage, start_batch
from stores import redis as redis_store
from stores.jobs import JobStore
from temporal.client import connect
from tests.conftest import SAMPLES, Services, make_settings
from tests.helpers import start_keel_process

pytestmark = [pytest.mark.slow, pytest.mark.stack]


async def test_unreachable_qdrant_fails_each_file_with_a_retryable_code(services: Services, tmp_path: Path) -> None:
    settings = make_settings(services, tmp_path / "data", ingest_task_queue=f"deadq-{uuid.uuid4().hex[:6]}")
    os.environ["QDRANT_URL"] = "http://127.0.0.1:1"  # nothing listens there
    try:
        worker = start_keel_process("infra.worker", settings, tmp_path / "worker.log")
    finally:
        del os.environ["QDRANT_URL"]
    try:
        client = await connect(settings)
        r = redis_store.connect(settings)
        staged = stage(settings, [SAMPLES / "faq.txt", SAMPLES / "keel-overview.md"], "deadq")
        counters = await (await start_batch(client, settings, r, staged, "deadq", [])).result()
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
    assert (counters.total, counters.failed) == (2, 2)
    for outcome in JobStore(r).files(staged.job_id):
        assert outcome.code == "vector_store_unavailable"
        assert "127.0.0.1:1" in (outcome.message or "")
