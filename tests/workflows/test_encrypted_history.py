"""With the codec on, Temporal's database holds no readable question or passage, and the
encrypted history still replays (with the deployment's converter)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from temporalio.client import Client
from temporalio.worker import Replayer

from app.query import build_query, query_workflow_id, run_query
from index.catalog import Catalog
from keel.config import Settings
from temporal.data_converter import data_converter
from tests.conftest import SAMPLES, Services
from tests.helpers import ingest
from workflows.query import QueryWorkflow

pytestmark = [pytest.mark.stack, pytest.mark.usefixtures("worker")]


async def test_history_holds_only_ciphertext(
    client: Client, settings: Settings, services: Services, redis_client: redis.Redis, tenant: str
) -> None:
    await ingest(client, settings, redis_client, [SAMPLES / "faq.txt"], tenant)
    marker = "zanzibar-quokka-marker"  # no number: a number the passage lacks declines the answer
    question = f"How do I retry failed files? ({marker})"
    inp = build_query(settings, redis_client, f"enc-{tenant}", tenant, [], question)
    out = await run_query(client, settings, inp)
    assert out.citations
    handle = client.get_workflow_handle(query_workflow_id(tenant, inp.request_id))
    history = await handle.fetch_history()
    raw = history.to_json()
    assert marker not in raw and "Run keel ingest again" not in raw  # neither question nor passage
    db = b"".join(p.read_bytes() for p in services.data_dir.glob("temporal.sqlite*"))
    assert marker.encode() not in db
    await Replayer(workflows=[QueryWorkflow], data_converter=data_converter(settings)).replay_workflow(history)


async def test_failure_messages_are_sealed(
    client: Client, settings: Settings, redis_client: redis.Redis, tenant: str, tmp_path: Path
) -> None:
    broken = tmp_path / "wire-transfer-memo-4471.pdf"
    broken.write_bytes(b"%PDF-1.7\n" + b"\0" * 300_000)  # large enough for an activity of its own
    counters, files = await ingest(
        client, settings.model_copy(update={"ingest_group_size": 1}), redis_client, [broken], tenant
    )
    outcome = files[broken.name]
    assert counters.failed == 1 and outcome.code == "corrupt_file"
    history = await client.get_workflow_handle(outcome.workflow_id or "", run_id=outcome.run_id).fetch_history()
    raw = history.to_json()
    assert "failureInfo" in raw or "failure" in raw  # the failure is recorded...
    assert "damaged" not in raw and "Traceback" not in raw  # ...but its message and stack are sealed


async def test_a_workflow_started_with_plain_payloads_never_runs(
    client: Client, settings: Settings, redis_client: redis.Redis, tenant: str
) -> None:
    """Whoever reaches Temporal without the key cannot start Keel's workflows with inputs of
    their own: an erasure started that way fails to decode and erases nothing."""
    await ingest(client, settings, redis_client, [SAMPLES / "faq.txt"], tenant)
    plain = await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)
    handle = await plain.start_workflow(
        "EraseTenant",
        {"tenant": tenant},
        id=f"attack-erase/{tenant}",
        task_queue=settings.ingest_task_queue,
        execution_timeout=timedelta(seconds=30),
    )
    try:
        for _ in range(50):
            events = [e async for e in handle.fetch_history_events()]
            if any(e.HasField("workflow_task_failed_event_attributes") for e in events):
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError("the plain start was not refused")
        assert Catalog(redis_client).document_count(tenant) == 1  # nothing was erased
    finally:
        await handle.terminate("test over")
