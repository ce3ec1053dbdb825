"""IngestBatch / IngestDocument against the real Temporal dev server, Redis, Qdrant Edge and models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pikepdf
import pytest
import redis
from temporalio.client import Client, WorkflowExecutionStatus

from app.ingest import stage, start_batch
from app.staging import stage_paths
from index.visibility import visible_at
from keel import ids
from keel.config import Settings
from pipelines.deps import Deps
from pipelines.ingest import IngestSteps
from stores.blobs import BlobStore
from stores.keys import doc_key, generation_key
from tests.conftest import SAMPLES
from tests.helpers import ingest, points_of, visible_texts
from vectorstore.base import Cond, Where

pytestmark = [pytest.mark.stack, pytest.mark.usefixtures("worker")]


async def test_batch_ingests_every_type_and_reingest_is_a_noop(
    client: Client, settings: Settings, redis_client: redis.Redis, deps: Deps, tenant: str
) -> None:
    counters, files = await ingest(client, settings, redis_client, [SAMPLES], tenant)
    assert (counters.total, counters.ingested, counters.failed) == (6, 6, 0)
    for name, outcome in files.items():
        assert outcome.status == "ingested", name
        assert outcome.chunks >= 1
        assert points_of(deps, tenant, SAMPLES / name) == outcome.chunks

    runbook = SAMPLES / "incident-runbook.md"
    record = redis_client.hgetall(doc_key(tenant, ids.document_id(tenant, str(runbook))))
    assert json.loads(record["pii"]) == {"EMAIL_ADDRESS": 1, "PERSON": 1, "PHONE_NUMBER": 1}
    texts = visible_texts(deps, redis_client, tenant)
    assert any("<EMAIL_ADDRESS>" in t for t in texts)
    assert not any("maria.gonzalez@example.com" in t or "Maria Gonzalez" in t for t in texts)

    hit = deps.store.scroll(settings.collection, _doc_where(tenant, SAMPLES / "keel-overview.md"))[0][0]
    assert hit.payload["embedding_version"] == deps.indexes.active(tenant).version.key
    assert hit.payload["embedding"]["dim"] == 384 and hit.payload["section_path"][0] == "Keel overview"
    for key in (
        "tenant",
        "access_groups",
        "doc_id",
        "version",
        "source",
        "title",
        "chunk_index",
        "content_hash",
        "ingested_at",
    ):
        assert key in hit.payload

    again, _ = await ingest(client, settings, redis_client, [SAMPLES], tenant)
    assert (again.unchanged, again.ingested, again.failed) == (6, 0, 0)
    for name, outcome in files.items():
        assert points_of(deps, tenant, SAMPLES / name) == outcome.chunks


async def test_changed_document_replaces_its_chunks_atomically(
    client: Client, settings: Settings, redis_client: redis.Redis, deps: Deps, tenant: str, tmp_path: Path
) -> None:
    doc = tmp_path / "policy.md"
    doc.write_text("# Refund policy\n\nRefunds are issued within 30 days of purchase.\n")
    await ingest(client, settings, redis_client, [doc], tenant)
    gen_v1 = int(redis_client.get(generation_key(tenant)) or 0)

    doc.write_text("# Refund policy\n\nRefunds are issued within 14 days of purchase, never later.\n")
    deps.settings.retire_grace_seconds = 3600  # keep the retired version on disk to read both generations
    try:
        counters, _ = await ingest(client, settings, redis_client, [doc], tenant)
    finally:
        deps.settings.retire_grace_seconds = 0.0
    assert counters.ingested == 1
    gen_v2 = int(redis_client.get(generation_key(tenant)) or 0)
    assert gen_v2 == gen_v1 + 1
    assert points_of(deps, tenant, doc) == 2  # both versions are stored...

    # ...but a reader at any generation sees exactly one of them, never both and never neither.
    at_v1, at_v2 = " ".join(_texts_at(deps, tenant, gen_v1)), " ".join(_texts_at(deps, tenant, gen_v2))
    assert "30 days" in at_v1 and "14 days" not in at_v1
    assert "14 days" in at_v2 and "30 days" not in at_v2

    IngestSteps(deps).publisher.collect_retired(tenant)  # grace 0 again: the retired version goes
    assert points_of(deps, tenant, doc) == 1
    assert "14 days" in " ".join(_texts_at(deps, tenant, gen_v2))


async def test_bad_inputs_are_recorded_and_the_rest_goes_on(
    client: Client, settings: Settings, redis_client: redis.Redis, deps: Deps, tenant: str, tmp_path: Path
) -> None:
    d = tmp_path / "mixed"
    d.mkdir()
    shutil.copy(SAMPLES / "keel-overview.md", d / "good.md")
    (d / "empty.txt").write_bytes(b"")
    (d / "junk.txt").write_bytes(bytes(range(256)) * 20)
    (d / "broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj <<>> garbage")
    (d / "fake.docx").write_bytes(b"this is not a zip")
    (d / "photo.png").write_bytes(b"\x89PNG....")
    (d / "legacy.txt").write_bytes("Crème brûlée needs caramelised sugar on a cold custard base.".encode("cp1252"))
    (d / "escape.txt").symlink_to("/etc/hostname")
    with pikepdf.open(SAMPLES / "latency-budget.pdf") as pdf:
        pdf.save(d / "locked.pdf", encryption=pikepdf.Encryption(owner="o", user="u"))

    counters, files = await ingest(client, settings, redis_client, [d], tenant)
    codes = {name: o.code for name, o in files.items() if o.status == "failed"}
    assert codes == {
        "empty.txt": "empty_file",
        "junk.txt": "not_text",
        "broken.pdf": "corrupt_file",
        "fake.docx": "corrupt_file",
        "photo.png": "unsupported_type",
        "locked.pdf": "encrypted_file",
        "escape.txt": "unsafe_name",
    }
    assert files["good.md"].status == "ingested" and files["legacy.txt"].status == "ingested"
    assert counters.failed == 7 and counters.ingested == 2
    assert files["junk.txt"].workflow_id and files["junk.txt"].run_id  # a run to open in the UI
    assert "Crème brûlée" in " ".join(visible_texts(deps, redis_client, tenant))

    # A later ingest of the same folder retries just the failures; a fixed file now goes in.
    (d / "junk.txt").write_text("Now a readable note about search latency budgets.\n")
    again, files_again = await ingest(client, settings, redis_client, [d], tenant)
    assert files_again["junk.txt"].status == "ingested"
    assert files_again["good.md"].status == "unchanged" and files_again["legacy.txt"].status == "unchanged"
    assert again.failed == 6


async def test_oversized_files_are_refused_while_staging(settings: Settings, tmp_path: Path, tenant: str) -> None:
    (tmp_path / "big.txt").write_text("x" * 5000)
    (tmp_path / "small.txt").write_text("tiny but fine")
    staged = stage_paths([tmp_path], tenant, "job-size", BlobStore(settings.blob_dir), max_bytes=1000)
    entries = BlobStore(settings.blob_dir).get_json("manifests/job-size/000000.json")
    by_name = {Path(e["source"]).name: e for e in entries}
    assert staged.refused == 1
    assert (
        by_name["big.txt"]["error_code"] == "file_too_large"
        and "limit is 1,000 bytes" in by_name["big.txt"]["error_message"]
    )
    assert by_name["small.txt"]["error_code"] is None


async def test_same_paragraph_in_two_files_is_stored_once(
    client: Client, settings: Settings, redis_client: redis.Redis, deps: Deps, tenant: str, tmp_path: Path
) -> None:
    shared = (
        "Every retrieval is filtered by tenant and by the caller's access groups, so nothing leaks between tenants."
    )
    (tmp_path / "a.md").write_text(f"# A\n\n{shared}\n")
    (tmp_path / "b.md").write_text(f"# A\n\n{shared}\n\n")  # same text, different bytes
    first, _ = await ingest(client, settings, redis_client, [tmp_path / "a.md"], tenant)
    counters, _ = await ingest(client, settings, redis_client, [tmp_path / "b.md"], tenant)
    assert first.ingested == 1 and counters.ingested == 1 and counters.duplicates == 1
    assert points_of(deps, tenant, tmp_path / "a.md") + points_of(deps, tenant, tmp_path / "b.md") == 1
    assert visible_texts(deps, redis_client, tenant).count(shared) == 1


async def test_a_retired_owner_hands_its_paragraph_back(
    client: Client, settings: Settings, redis_client: redis.Redis, deps: Deps, tenant: str, tmp_path: Path
) -> None:
    shared = "Quarterly access reviews are signed off by the security lead before the audit window closes."
    a, b = tmp_path / "a.md", tmp_path / "b.md"
    a.write_text(f"# Controls\n\n{shared}\n")
    b.write_text(f"# Controls\n\n{shared}\n\n")
    await ingest(client, settings, redis_client, [a], tenant)
    _, files = await ingest(client, settings, redis_client, [b], tenant)
    assert files["b.md"].duplicates == 1 and points_of(deps, tenant, b) == 0

    a.write_text("# Controls\n\nAccess reviews moved to the new identity platform.\n")  # the paragraph is gone from a
    await ingest(client, settings, redis_client, [a], tenant)
    assert points_of(deps, tenant, b) == 1  # b stores it now, under its own document id
    texts = visible_texts(deps, redis_client, tenant)
    assert texts.count(shared) == 1 and any("identity platform" in t for t in texts)


async def test_access_groups_and_tenants_filter_every_read(
    client: Client, settings: Settings, redis_client: redis.Redis, deps: Deps, tenant: str, tmp_path: Path
) -> None:
    (tmp_path / "salaries.md").write_text("# Salaries\n\nThe salary bands for 2027 are confidential.\n")
    await ingest(client, settings, redis_client, [tmp_path], tenant, groups=["hr"])
    assert any("salary bands" in t for t in visible_texts(deps, redis_client, tenant, ["hr"]))
    assert visible_texts(deps, redis_client, tenant, ["eng"]) == []
    assert visible_texts(deps, redis_client, tenant + "other", ["hr"]) == []


async def test_large_batches_continue_as_new(
    client: Client, settings: Settings, redis_client: redis.Redis, tenant: str, tmp_path: Path
) -> None:
    for i in range(7):
        (tmp_path / f"note-{i}.md").write_text(f"# Note {i}\n\nObservation number {i} about cache hit rates.\n")
    small_runs = settings.model_copy(update={"batch_window": 2, "batch_continue_every": 3})
    staged = stage(small_runs, [tmp_path], tenant)
    handle = await start_batch(client, small_runs, redis_client, staged, tenant, [])
    counters = await handle.result()
    assert (counters.total, counters.ingested, counters.done) == (7, 7, 7)
    first = client.get_workflow_handle(handle.id, run_id=handle.first_execution_run_id)
    assert (await first.describe()).status == WorkflowExecutionStatus.CONTINUED_AS_NEW


def _doc_where(tenant: str, source: Path) -> Where:
    return Where(must=(Cond("tenant", value=tenant), Cond("doc_id", value=ids.document_id(tenant, str(source)))))


def _texts_at(deps: Deps, tenant: str, generation: int) -> list[str]:
    hits, _ = deps.store.scroll(deps.settings.collection, visible_at(tenant, generation, []), limit=100)
    return [h.payload["text"] for h in hits]
