"""Every workflow replays deterministically against histories committed under tests/histories.

A change to workflow code that would break running workflows fails here; guard such a change
with `workflow.patched(...)`. To record histories of new behaviour (files that are missing):
    KEEL_RECORD_HISTORIES=1 make test PYTEST_ARGS="-k record_histories"
Histories recorded since the payload codec are sealed (`*.sealed.json`), as production's are, with
the test suite's own key (`tests.conftest.TEST_CODEC_KEY`); the plain ones from before still replay.
Those recorded since tenants have data keys of their own have the tenant's key beside them
(`<name>.data-key`: the record Redis held, wrapped by the suite's key ring), put back in Redis for
the replay. Histories older than a retired patch leave (docs/concepts/durability-and-replay.md).
"""

from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import asdict
from pathlib import Path

import pytest
import redis
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from app import backup as snapshots
from app import conversations as conversation
from app import index as migrations
from app.conversations import conversation_workflow_id
from app.delete import delete_document, erase_tenant
from app.query import build_query, query_workflow_id, run_query
from caches.semantic import semantic_cache
from contracts.conversation import ConversationStart
from gateway.keys import ADMIN, INGEST, QUERY, KeyStore
from keel import ids
from keel.config import Settings
from pipelines.deps import Deps
from stores import conversations, query_state
from stores.keys import data_key_key
from temporal.data_converter import DATA_CONVERTER, data_converter
from tests.conftest import SAMPLES, TEST_CODEC_KEY
from tests.helpers import ingest
from workflows.backfill_index import BackfillIndexWorkflow
from workflows.backup import BackupTenantWorkflow, RestoreTenantWorkflow
from workflows.conversation import ConversationWorkflow
from workflows.delete import DeleteDocumentWorkflow, EraseTenantWorkflow
from workflows.ingest_batch import IngestBatchWorkflow
from workflows.ingest_document import IngestDocumentWorkflow
from workflows.ingest_group import IngestGroupWorkflow
from workflows.query import QueryWorkflow

HISTORIES = Path(__file__).resolve().parent.parent / "histories"
WORKFLOWS = [
    IngestBatchWorkflow,
    IngestDocumentWorkflow,
    IngestGroupWorkflow,
    QueryWorkflow,
    DeleteDocumentWorkflow,
    EraseTenantWorkflow,
    BackfillIndexWorkflow,
    BackupTenantWorkflow,
    RestoreTenantWorkflow,
    ConversationWorkflow,
]
TYPES = (
    "IngestBatch",
    "IngestDocument",
    "IngestGroup",
    "Query",
    "DeleteDocument",
    "EraseTenant",
    "BackfillIndex",
    "BackupTenant",
    "RestoreTenant",
    "Conversation",
)


def _history_files() -> list[Path]:
    return sorted(HISTORIES.glob("*.json"))


def test_histories_are_committed() -> None:
    sealed = {p.name.split(".")[0] for p in _history_files() if p.name.endswith(".sealed.json")}
    assert set(TYPES) <= sealed
    assert {"IngestBatch", "IngestDocument", "Query"} <= {p.name.split(".")[0] for p in _history_files()}


@pytest.mark.parametrize("path", _history_files(), ids=lambda p: p.name)
async def test_replay(path: Path, settings: Settings, redis_client: redis.Redis) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    sealed = path.name.endswith(".sealed.json")
    # The session's settings carry the suite's codec key and its Redis, where tenants' data keys
    # are: a replayed workflow seals the commands it makes again, a tenant's with its own key.
    assert settings.codec_key == TEST_CODEC_KEY
    converter = data_converter(settings) if sealed else DATA_CONVERTER
    key_file = path.with_name(path.name.removesuffix(".json") + ".data-key")
    if key_file.exists():  # the tenant's data key as it was when the history was recorded
        kept = json.loads(key_file.read_text())
        redis_client.set(data_key_key(kept["tenant"]), json.dumps(kept["record"]))
    try:
        await Replayer(workflows=WORKFLOWS, data_converter=converter).replay_workflow(history)
    finally:
        if key_file.exists():
            redis_client.delete(data_key_key(kept["tenant"]))


@pytest.mark.skipif(not os.environ.get("KEEL_RECORD_HISTORIES"), reason="set KEEL_RECORD_HISTORIES=1 to re-record")
@pytest.mark.usefixtures("worker")
async def test_record_histories(
    client: Client, settings: Settings, redis_client: redis.Redis, deps: Deps, tenant: str, tmp_path: Path
) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.pdf").write_bytes(b"%PDF-1.4 nope")
    (bad / "empty.txt").write_bytes(b"")
    # too large for a group: a workflow of its own that fails, and cleans up after itself
    (bad / "big-broken.pdf").write_bytes(b"%PDF-1.4 nope\n" + b"0" * 300_000)
    await ingest(client, settings, redis_client, [SAMPLES / "keel-overview.md", SAMPLES / "faq.txt", bad], tenant)
    data_keys: dict[str, dict[str, str]] = {}  # key id -> the tenant's wrapped key record, as Redis held it

    def keep_data_key() -> None:
        record = redis_client.get(data_key_key(tenant))
        if record is not None:
            data_keys[json.loads(record)["id"]] = json.loads(record)

    keep_data_key()
    # a query that degrades (rerank out of budget) covers the workflow's fallback branches too
    inp = build_query(settings, redis_client, "record", tenant, [], "How do I retry failed files?")
    inp.budgets_ms = {"rerank": 1}
    await run_query(client, settings, inp)
    # A paraphrase answered from the semantic cache: the workflow's early return.
    semantic = semantic_cache(deps)
    asked = build_query(settings, redis_client, "record-asked", tenant, [], "How do I retry failed files?")
    asked.cache_scope = "record"
    first = await run_query(client, settings, asked)
    vector = query_state.question_vector(redis_client, tenant, "record-asked")
    assert vector is not None
    answer = {k: v for k, v in asdict(first).items() if k not in ("request_id", "timings_ms", "attempts")}
    index = deps.indexes.by_version(tenant, first.embedding_version)
    assert semantic.remember(index, tenant, "record", first.generation, asked.question, vector, answer)
    para = build_query(settings, redis_client, "record-hit", tenant, [], "How can I retry files that failed?")
    para.cache_scope = "record"
    assert (await run_query(client, settings, para)).cache == "semantic"
    hit = HISTORIES / "Query.semantic-hit.find-and-answer.sealed.json"
    keep_data_key()
    if not hit.exists():
        handle = client.get_workflow_handle(query_workflow_id(tenant, "record-hit"))
        hit.write_text((await handle.fetch_history()).to_json())
        _keep_key_beside(hit, tenant, data_keys)
    # The same question again in a snippet scope: the kept rankings stand in for retrieve and rerank.
    for rid in ("record-snippet-kept", "record-snippet-hit"):
        again = build_query(settings, redis_client, rid, tenant, [], "What formats does keel parse?")
        again.snippet_scope = "record"
        answered = await run_query(client, settings, again)
    assert answered.cache == "snippet"
    snippet_hit = HISTORIES / "Query.snippet-hit.find-and-answer.sealed.json"
    if not snippet_hit.exists():
        handle = client.get_workflow_handle(query_workflow_id(tenant, "record-snippet-hit"))
        snippet_hit.write_text((await handle.fetch_history()).to_json())
        _keep_key_beside(snippet_hit, tenant, data_keys)
    # A migration that runs to its end: backfill, gate (forced), flip, a one-second retention.
    _, migration = await migrations.start_migration(
        client, settings, redis_client, tenant, "default-w128", shadow_wait_s=0, retention_s=1, force=True
    )
    await migration.result()
    (backed_up,) = await snapshots.backup(client, settings, redis_client, [tenant], tmp_path / "backup")
    store = KeyStore(redis_client)
    # A conversation that continues as new after two turns, and is ended by the tenant's erasure.
    asker = store.create(tenant=tenant, roles=[QUERY])[0].principal()
    began = ConversationStart(
        tenant=tenant, conversation_id="d" * 32, owner=asker.key_id, created_at=time.time(), retention_s=3600,
        history_tokens=2000, query_task_queue=settings.query_task_queue, turns_per_run=2,
    )  # fmt: skip
    await client.start_workflow(
        "Conversation", began, id=conversation_workflow_id(tenant, began.conversation_id),
        task_queue=settings.conversation_queue,
    )  # fmt: skip
    conversations.add(redis_client, tenant, asker.key_id, began.conversation_id)
    for n, question in enumerate(("How do I retry failed files?", "Does that skip unchanged ones?", "And then?")):
        turn = build_query(settings, redis_client, f"record-turn-{n}", tenant, [], question)
        await conversation.take_turn(client, settings, redis_client, asker, began.conversation_id, turn)
    writer = store.create(tenant=tenant, roles=[INGEST])[0].principal()
    await delete_document(client, settings, redis_client, writer, ids.document_id(tenant, str(SAMPLES / "faq.txt")))
    keep_data_key()
    await erase_tenant(client, settings, redis_client, store.create(tenant=tenant, roles=[ADMIN])[0].principal())
    await snapshots.restore(client, settings, redis_client, [(tenant, Path(backed_up.folder))])
    keep_data_key()
    kinds = ", ".join(f"'{t}'" for t in TYPES)
    async for wf in client.list_workflows(f"WorkflowType IN ({kinds}) AND ExecutionStatus != 'Running'"):
        if tenant not in wf.id and not wf.id.startswith(("ingest-batch/", "ingest-group/")):
            continue
        if wf.workflow_type == "Query" and wf.id != query_workflow_id(tenant, "record"):
            continue  # the degraded query; the cache hits were kept above
        history = await client.get_workflow_handle(wf.id, run_id=wf.run_id).fetch_history()
        status = wf.status.name.lower() if wf.status else "unknown"
        grouped = any(  # a batch since small documents go in groups
            e.start_child_workflow_execution_initiated_event_attributes.workflow_type.name == "IngestGroup"
            for e in history.events
        )
        patched = any(e.marker_recorded_event_attributes.marker_name == "core_patch" for e in history.events)
        variant = ".grouped" if grouped and wf.workflow_type == "IngestBatch" else ""
        variant = ".conversations" if patched and wf.workflow_type == "EraseTenant" else variant
        variant = ".find-and-answer" if patched and wf.workflow_type == "Query" else variant
        target = HISTORIES / f"{wf.workflow_type}.{status}{variant}.sealed.json"
        if not target.exists():
            target.write_text(history.to_json())
            _keep_key_beside(target, tenant, data_keys)


def _keep_key_beside(history: Path, tenant: str, data_keys: dict[str, dict[str, str]]) -> None:
    """Write the tenant's data key that sealed the history beside it (a tenant's payloads carry
    its key's id in their metadata)."""
    used = set()
    for found in _metadata_values(json.loads(history.read_text()), "encryption-key-id"):
        used.add(base64.b64decode(found).decode())
    for key_id in used & set(data_keys):
        record = {"tenant": tenant, "record": data_keys[key_id]}
        history.with_name(history.name.removesuffix(".json") + ".data-key").write_text(json.dumps(record))


def _metadata_values(node: object, name: str) -> list[str]:
    if isinstance(node, dict):
        here = [node["metadata"][name]] if isinstance(node.get("metadata"), dict) and name in node["metadata"] else []
        return here + [v for child in node.values() for v in _metadata_values(child, name)]
    if isinstance(node, list):
        return [v for child in node for v in _metadata_values(child, name)]
    return []
