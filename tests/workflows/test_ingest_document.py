"""IngestDocumentWorkflow on its own: the step-by-step path of a large document, and recovery of a
run that published before a crash."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
import redis
from temporalio.client import Client
from temporalio.worker import Replayer

from contracts.ingest import IngestDocumentOutput
from index.catalog import Catalog, staged_record
from index.publish import Published
from keel import ids
from keel.config import Settings
from keel.errors import DocumentForbidden
from pipelines.deps import Deps
from pipelines.ingest import TRANSIENT_WORK_FILES, IngestSteps, local_document
from stores.blobs import work_key
from temporal.data_converter import data_converter
from tests.conftest import SAMPLES
from tests.helpers import ingest, points_of
from workflows.ingest_document import IngestDocumentWorkflow

pytestmark = [pytest.mark.stack, pytest.mark.usefixtures("worker")]


async def test_large_document_runs_each_step_as_its_own_activity(
    client: Client, settings: Settings, redis_client: redis.Redis, deps: Deps, tenant: str, tmp_path: Path
) -> None:
    """Over LOCAL_MAX_BYTES a document takes the heartbeated step-by-step path; same result."""
    from workflows.policies import LOCAL_MAX_BYTES

    doc = tmp_path / "handbook.md"
    sections = []
    for i in range(400):
        sections.append(f"## Section {i}\n\n" + f"Paragraph {i} explains procedure number {i} in detail. " * 6)
    doc.write_text("# Operations handbook\n\n" + "\n\n".join(sections) + "\n")
    assert doc.stat().st_size > LOCAL_MAX_BYTES

    counters, files = await ingest(client, settings, redis_client, [doc], tenant)
    outcome = files["handbook.md"]
    assert (counters.ingested, counters.failed) == (1, 0)
    assert outcome.chunks > 10 and points_of(deps, tenant, doc) == outcome.chunks

    history = await client.get_workflow_handle(outcome.workflow_id or "", run_id=outcome.run_id).fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert scheduled == [
        "ingest.parse",
        "ingest.chunk",
        "ingest.redact",
        "ingest.dedupe",
        "ingest.embed",
        "ingest.upsert",
        "ingest.publish",
    ]


def test_a_run_that_published_before_a_crash_reports_its_own_outcome(deps: Deps, tenant: str) -> None:
    """Begin, stage and publish of a small document are local activities in one workflow task: a
    worker killed after publish but before the task completed replays them all in the same run.
    That run's document was ingested by it, so it must not come back as "unchanged"."""
    steps = IngestSteps(deps)
    path = SAMPLES / "faq.txt"
    data = path.read_bytes()
    doc = local_document(tenant, path, data)
    begun = steps.begin(doc, "run-1")
    assert not begun.unchanged
    staged = steps.stage(doc, begun.doc_id, data)
    record = staged_record(doc, staged)
    published = steps.publish(doc, begun.doc_id, record, "run-1")
    assert not published.already_published

    again = steps.begin(doc, "run-1")  # the same run, after the crash
    expected = IngestDocumentOutput(
        doc_id=begun.doc_id,
        version=doc.version,
        status="ingested",
        chunks=staged.chunks,
        duplicates=staged.duplicates,
        pii=staged.pii,
        generation=published.generation,
    )
    assert again.unchanged and again.published_here == expected
    assert steps.publish(doc, begun.doc_id, record, "run-1") == Published(generation=published.generation)

    later = steps.begin(doc, "run-2")  # a later ingest of the same bytes is a repeat
    assert later.unchanged and later.published_here is None
    assert steps.publish(doc, begun.doc_id, record, "run-2").already_published


@pytest.mark.parametrize("size", [200_000, 2_000], ids=["large", "small"])
async def test_a_failed_document_leaves_nothing_behind(
    client: Client, settings: Settings, redis_client: redis.Redis, tenant: str, tmp_path: Path, size: int
) -> None:
    """A document that fails for good is cleaned up by its own run: no raw bytes, no work files,
    no record (a retry stages the file again). Over LOCAL_MAX_BYTES it fails in a regular
    activity, under it in the local one that stages it."""
    settings = settings.model_copy(update={"ingest_group_size": 1})  # a workflow of its own
    bad = tmp_path / "scan.pdf"
    bad.write_bytes(b"%PDF-1.7\n" + os.urandom(size))
    counters, files = await ingest(client, settings, redis_client, [bad], tenant)
    assert counters.failed == 1 and files["scan.pdf"].code == "corrupt_file"
    leftovers = [p for p in Path(settings.blob_dir).rglob("*") if p.is_file() and f"/{tenant}/" in str(p)]
    assert leftovers == []
    doc_id = ids.document_id(tenant, str(bad))
    assert Catalog(redis_client).record(tenant, doc_id) == {}
    # the cleanup is part of the run's history (behind its patch), and that history replays
    outcome = files["scan.pdf"]
    history = await client.get_workflow_handle(outcome.workflow_id or "", run_id=outcome.run_id).fetch_history()
    await Replayer(workflows=[IngestDocumentWorkflow], data_converter=data_converter(settings)).replay_workflow(history)


def test_discard_removes_staged_points_and_every_work_file(deps: Deps, tenant: str) -> None:
    steps = IngestSteps(deps)
    path = SAMPLES / "faq.txt"
    data = path.read_bytes()
    doc = local_document(tenant, path, data)
    begun = steps.begin(doc)
    steps.stage(doc, begun.doc_id, data)  # points written, invisible; redacted chunks saved
    for name in TRANSIENT_WORK_FILES:  # as a step-by-step run leaves them when it fails mid-way
        deps.blobs.put(work_key(tenant, doc.version, name), b"unredacted")
    assert points_of(deps, tenant, path) > 0

    assert steps.discard(doc, begun.doc_id) > len(TRANSIENT_WORK_FILES)
    assert points_of(deps, tenant, path) == 0
    assert not any(
        deps.blobs.exists(work_key(tenant, doc.version, n)) for n in (*TRANSIENT_WORK_FILES, "redacted.json")
    )
    assert steps.catalog.record(tenant, begun.doc_id) == {}


def test_a_writer_cannot_publish_over_a_version_it_may_not_replace_that_landed_while_it_staged(
    deps: Deps, tenant: str
) -> None:
    """The write ACL is checked where the flip happens, not only when an ingest begins: a key with
    no groups began its file before an HR-only version was published, and must not overwrite it."""
    steps = IngestSteps(deps)
    path = SAMPLES / "faq.txt"
    slow_data, hr_data = path.read_bytes(), path.read_bytes() + b"\nHR only: the payroll pool is 41,000.\n"
    slow = replace(local_document(tenant, path, slow_data), writer_groups=[])
    hr = replace(local_document(tenant, path, hr_data, groups=["hr"]), writer_groups=["hr"])

    begun = steps.begin(slow, "run-slow")  # nothing published yet: the slow file may go ahead
    staged = steps.stage(slow, begun.doc_id, slow_data)
    assert not steps.begin(hr, "run-hr").unchanged
    steps.publish(hr, begun.doc_id, staged_record(hr, steps.stage(hr, begun.doc_id, hr_data)), "run-hr")

    with pytest.raises(DocumentForbidden):
        steps.publish(slow, begun.doc_id, staged_record(slow, staged), "run-slow")
    record = Catalog(deps.redis).record(tenant, begun.doc_id)
    assert record["version"] == hr.version and json.loads(record["groups"]) == ["hr"]
