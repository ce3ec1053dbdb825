"""IngestDocumentWorkflow on its own: the step-by-step path of a large document, and recovery of a
run that published before a crash."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from temporalio.client import Client

from contracts.ingest import IngestDocumentOutput
from index.catalog import staged_record
from index.publish import Published
from keel.config import Settings
from pipelines.deps import Deps
from pipelines.ingest import IngestSteps, local_document
from tests.conftest import SAMPLES
from tests.helpers import ingest, points_of

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
