"""IngestGroupWorkflow: small documents of a batch staged and published together, each ending on its own."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import redis
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.worker import Replayer

from index.catalog import Catalog
from keel import ids
from keel.config import Settings
from pipelines.deps import Deps
from pipelines.ingest_group import GroupSteps
from temporal.data_converter import data_converter
from tests.conftest import SAMPLES
from tests.helpers import ingest, points_of
from workflows.ingest_group import IngestGroupWorkflow

pytestmark = [pytest.mark.stack, pytest.mark.usefixtures("worker")]

SMALL = ("faq.txt", "keel-overview.md", "security.html", "incident-runbook.md")


def _folder(tmp_path: Path) -> Path:
    d = tmp_path / "docs"
    d.mkdir()
    for name in SMALL:
        shutil.copy(SAMPLES / name, d / name)
    return d


def _local_activities(history: object) -> list[str]:
    """The local activities a run recorded, by type, in order (their markers' details)."""
    import json

    names = []
    for e in history.events:  # type: ignore[attr-defined]
        if e.HasField("marker_recorded_event_attributes"):
            data = e.marker_recorded_event_attributes.details.get("data")
            if data is not None and data.payloads:
                names.append(json.loads(data.payloads[0].data)["activity_type"])
    return names


async def test_small_documents_share_one_workflow_and_a_bad_one_fails_alone(
    client: Client, settings: Settings, redis_client: redis.Redis, deps: Deps, tenant: str, tmp_path: Path
) -> None:
    d = _folder(tmp_path)
    (d / "broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj <<>> garbage")
    counters, files = await ingest(client, settings, redis_client, [d], tenant)

    assert (counters.ingested, counters.failed) == (len(SMALL), 1)
    groups = {files[name].workflow_id for name in SMALL}
    assert len(groups) == 1 and next(iter(groups), "").startswith("ingest-group/")  # type: ignore[union-attr]
    for name in SMALL:
        assert files[name].status == "ingested" and points_of(deps, tenant, d / name) == files[name].chunks > 0
    broken = files["broken.pdf"]
    assert broken.code == "corrupt_file" and broken.workflow_id in groups and broken.run_id
    # the failed one is cleaned up like a failed document run: no record, no files, no claim
    assert Catalog(redis_client).record(tenant, ids.document_id(tenant, str(d / "broken.pdf"))) == {}
    leftovers = [p for p in Path(settings.blob_dir).rglob("*") if p.is_file() and f"/{tenant}/" in str(p)]
    assert all(p.name == "redacted.json" for p in leftovers)  # kept for re-homing duplicates
    assert not list(redis_client.scan_iter(f"keel:ingesting:{{{tenant}}}:*"))

    history = await client.get_workflow_handle(broken.workflow_id or "", run_id=broken.run_id).fetch_history()
    assert _local_activities(history) == ["ingest.begin_group", "ingest.stage_group", "ingest.publish_group"]

    again, files_again = await ingest(client, settings, redis_client, [d], tenant)
    assert again.unchanged == len(SMALL) and files_again["broken.pdf"].code == "corrupt_file"


async def test_a_group_that_fails_as_a_whole_falls_back_to_a_workflow_per_document(
    client: Client,
    settings: Settings,
    redis_client: redis.Redis,
    deps: Deps,
    tenant: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken_stage(*args: object, **kwargs: object) -> None:
        raise ApplicationError("the group's staging broke", type="test_failure", non_retryable=True)

    monkeypatch.setattr(GroupSteps, "stage", broken_stage)
    d = _folder(tmp_path)
    counters, files = await ingest(client, settings, redis_client, [d], tenant)

    assert counters.ingested == len(SMALL) and counters.failed == 0
    for name in SMALL:  # each went in through a document workflow of its own
        assert (files[name].workflow_id or "").startswith("ingest/")
        assert points_of(deps, tenant, d / name) == files[name].chunks > 0
    # the failed group's run cleaned up after itself first (the claims went with it)
    failed = [wf async for wf in client.list_workflows("WorkflowType = 'IngestGroup' AND ExecutionStatus = 'Failed'")]
    histories = [await client.get_workflow_handle(wf.id, run_id=wf.run_id).fetch_history() for wf in failed]
    ran = [_local_activities(h) for h in histories]
    assert ["ingest.begin_group", "ingest.stage_group", "ingest.discard_group"] in ran
    replayer = Replayer(workflows=[IngestGroupWorkflow], data_converter=data_converter(settings))
    for history in histories:
        await replayer.replay_workflow(history)


async def test_bytes_another_run_is_ingesting_are_left_to_it(
    client: Client, settings: Settings, redis_client: redis.Redis, tenant: str, tmp_path: Path
) -> None:
    d = _folder(tmp_path)
    catalog = Catalog(redis_client)
    version = ids.sha256_bytes((d / "faq.txt").read_bytes())
    assert catalog.claim(tenant, version, "another-run")

    _, files = await ingest(client, settings, redis_client, [d], tenant)
    assert files["faq.txt"].status == "unchanged" and files["faq.txt"].message == "already being ingested"
    assert files["keel-overview.md"].status == "ingested"

    catalog.release(tenant, version, "not-the-holder")  # only the holder lets go
    assert not catalog.claim(tenant, version, "a-third-run")
    catalog.release(tenant, version, "another-run")
    _, files = await ingest(client, settings, redis_client, [d], tenant)
    assert files["faq.txt"].status == "ingested"
