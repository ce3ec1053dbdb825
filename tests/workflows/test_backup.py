"""Backup and restore: a tenant's snapshot brought back into an empty stack answers the same; a
damaged, altered or foreign snapshot, or a tenant that already has data, is refused."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import signal
import stat
import tarfile
import uuid
from pathlib import Path

import pytest
import redis
from temporalio.client import Client

from app import backup as snapshots
from app.query import build_query, run_query
from gateway.keys import QUERY, KeyStore
from infra.services import free_port, start_redis
from keel.config import Settings
from keel.errors import BadInput, RestoreConflict
from keel.keyring import KeyRing, load_key_ring
from pipelines.backup import FILES, MANIFEST_PURPOSE, canonical
from pipelines.deps import Deps
from pipelines.migrate import Migrator
from pipelines.restore import Restorer, read_manifest
from stores import redis as redis_store
from stores.keys import generation_key, tenant_api_keys_key
from temporal.client import connect
from tests.conftest import SAMPLES, Services, make_settings
from tests.helpers import ingest, start_keel_process

pytestmark = [pytest.mark.stack, pytest.mark.usefixtures("worker")]

QUESTIONS = [
    "How do I retry failed files?",
    "What is the latency budget for retrieval?",
    "How are API keys stored?",
]


async def answers(client: Client, settings: Settings, r: redis.Redis, tenant: str) -> dict[str, object]:
    out: dict[str, object] = {}
    for q in QUESTIONS:
        got = await run_query(client, settings, build_query(settings, r, uuid.uuid4().hex, tenant, [], q))
        out[q] = (
            got.answer,
            [(c.doc_id, c.version, c.source, c.section_path) for c in got.citations],
            got.embedding_version,
        )
    return out


@pytest.mark.slow
async def test_a_snapshot_restored_into_an_empty_stack_answers_the_same(
    client: Client, settings: Settings, redis_client: redis.Redis, services: Services, tenant: str, tmp_path: Path
) -> None:
    r = redis_client
    counters, _ = await ingest(client, settings, r, [SAMPLES], tenant)
    assert counters.ingested == 6
    _, token = KeyStore(r).create(tenant=tenant, roles=[QUERY], name="reader")
    before = await answers(client, settings, r, tenant)

    (done,) = await snapshots.backup(client, settings, r, [tenant], tmp_path / "backups")
    folder = Path(done.folder)
    assert done.points > 0 and done.redis_keys > 0 and done.index == "default"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert all(stat.S_IMODE((folder / f).stat().st_mode) == 0o600 for f in (*FILES, "manifest.json"))
    assert not any(json.loads(line)["key"].startswith("keel:q:") for line in (folder / "redis.jsonl").open())

    # An empty stack: its own Redis, data folder and worker (the same Temporal server).
    red = start_redis(tmp_path / "stack2", port=free_port())
    queue = uuid.uuid4().hex[:8]
    other = make_settings(
        services,
        tmp_path / "data2",
        redis_url=f"redis://127.0.0.1:{red.port}/0",
        ingest_task_queue=f"restore-{queue}",
        query_task_queue=f"restore-q-{queue}",
    )
    worker = start_keel_process("infra.worker", other, tmp_path / "worker2.log")
    try:
        r2 = redis_store.connect(other)
        client2 = await connect(other)
        # As a 0.1 release wrote it: its keys without their tenant's tag.
        old = _as_written_by_0_1(folder, tmp_path / "backups-0.1" / tenant, load_key_ring(settings))
        (restored,) = await snapshots.restore(client2, other, r2, [(tenant, old)], api_keys=True)
        assert (restored.tenant, restored.points, restored.generation) == (tenant, done.points, done.generation)
        assert await answers(client2, other, r2, tenant) == before
        assert KeyStore(r2).resolve(token).tenant == tenant  # its keys work there too, when asked for
        with pytest.raises(RestoreConflict):  # the tenant has data there now
            await snapshots.restore(client2, other, r2, [(tenant, folder)])
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
        red.stop()


def _as_written_by_0_1(folder: Path, dest: Path, ring: KeyRing) -> Path:
    """A copy of a snapshot whose keys have the names 0.1 gave them, checksummed and signed again."""
    shutil.copytree(folder, dest)
    rows = [json.loads(line) for line in (dest / "redis.jsonl").open()]
    untag = re.compile(r"\{([^}]*)\}")
    (dest / "redis.jsonl").write_text(
        "".join(json.dumps({**row, "key": untag.sub(r"\1", row["key"])}) + "\n" for row in rows)
    )
    manifest = json.loads((dest / "manifest.json").read_text())
    manifest["sha256"]["redis.jsonl"] = hashlib.sha256((dest / "redis.jsonl").read_bytes()).hexdigest()
    manifest.pop("signature", None)
    manifest["signature"] = ring.sign(MANIFEST_PURPOSE, canonical(manifest))
    (dest / "manifest.json").write_text(json.dumps(manifest))
    return dest


async def test_damaged_altered_or_foreign_snapshots_are_refused(
    client: Client, settings: Settings, redis_client: redis.Redis, deps: Deps, tenant: str, tmp_path: Path
) -> None:
    r = redis_client
    ring = load_key_ring(settings)
    await ingest(client, settings, r, [SAMPLES / "faq.txt"], tenant)
    created, token = KeyStore(r).create(tenant=tenant, roles=[QUERY], name="reader")
    (done,) = await snapshots.backup(client, settings, r, [tenant], tmp_path / "b")
    folder = Path(done.folder)
    with pytest.raises(BadInput, match="tenant"):
        read_manifest(folder, f"{tenant}x", ring)  # a snapshot is restored as the tenant it is of
    # Only what a published document needs: no raw upload, no work file of an ingest in flight.
    with tarfile.open(folder / "blobs.tar") as tar:
        assert tar.getnames() and all(n.endswith("/redacted.json") for n in tar.getnames())

    damaged = tmp_path / "damaged" / tenant
    shutil.copytree(folder, damaged)
    with (damaged / "points.jsonl").open("ab") as f:
        f.write(b"\n")
    with pytest.raises(BadInput, match="checksum"):
        read_manifest(damaged, tenant, ring)

    # Altered with care (checksums made to match): a record of another tenant is still refused,
    # and nothing of the snapshot is visible afterwards.
    fresh = f"{tenant}r"
    forged = tmp_path / "forged" / fresh
    shutil.copytree(folder, forged)
    manifest = json.loads((forged / "manifest.json").read_text())
    manifest["tenant"] = fresh
    renamed = re.compile(re.escape("{" + tenant + "}"))
    rows = [json.loads(line) for line in (forged / "redis.jsonl").open()]
    rows = [{**row, "key": renamed.sub("{" + fresh + "}", row["key"])} for row in rows]
    for row in rows:
        if row["key"].startswith("keel:apikey:"):
            row["value"]["tenant"] = fresh
    rows.append({"key": "keel:limits:someone-else", "type": "string", "value": "{}", "ttl_ms": 0})
    (forged / "redis.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    points = [json.loads(line) for line in (forged / "points.jsonl").open()]
    for point in points:
        point["payload"]["tenant"] = fresh
    (forged / "points.jsonl").write_text("".join(json.dumps(p) + "\n" for p in points))
    with tarfile.open(folder / "blobs.tar") as src, tarfile.open(forged / "blobs.tar", "w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member)
            member.name = member.name.replace(f"/{tenant}/", f"/{fresh}/")
            dst.addfile(member, data)
    for name in FILES:
        manifest["sha256"][name] = hashlib.sha256((forged / name).read_bytes()).hexdigest()

    def write(signed_by: KeyRing | None) -> None:
        manifest.pop("signature", None)
        if signed_by is not None:
            manifest["signature"] = signed_by.sign(MANIFEST_PURPOSE, canonical(manifest))
        (forged / "manifest.json").write_text(json.dumps(manifest))

    write(None)  # checksums that match, but no signature of this deployment's: refused
    with pytest.raises(BadInput, match="not signed"):
        Restorer(deps).restore(forged, fresh)
    write(KeyRing(active="other", keys={"other": b"x" * 32}))  # another deployment's key
    with pytest.raises(BadInput, match="not signed"):
        Restorer(deps).restore(forged, fresh)
    # Signed with the right key after all (a stolen one): the records are still each checked.
    write(ring)
    with pytest.raises(BadInput, match="someone-else"):
        Restorer(deps).restore(forged, fresh)
    assert not r.exists("keel:limits:{someone-else}") and not r.exists(generation_key(fresh))
    assert Migrator(deps).count(deps.indexes.active(fresh), fresh) == 0  # refused before any write
    # A tenant named like a key segment cannot claim global or other tenants' keys.
    for planted in ("keel:lock:publish:someone", f"keel:doc:{fresh}x:abc", "keel:tenants"):
        rows[-1] = {"key": planted, "type": "string", "value": "1", "ttl_ms": 0}
        (forged / "redis.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
        manifest["sha256"]["redis.jsonl"] = hashlib.sha256((forged / "redis.jsonl").read_bytes()).hexdigest()
        write(ring)
        with pytest.raises(BadInput, match="not tenant"):
            Restorer(deps).restore(forged, fresh)

    # Without the planted record it restores, but the API keys stay behind unless asked for.
    (forged / "redis.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows[:-1]))
    manifest["sha256"]["redis.jsonl"] = hashlib.sha256((forged / "redis.jsonl").read_bytes()).hexdigest()
    write(ring)
    Restorer(deps).restore(forged, fresh)
    assert r.exists(generation_key(fresh)) and not r.exists(tenant_api_keys_key(fresh))
    assert KeyStore(r).resolve(token).tenant == tenant  # the original key is untouched
    assert r.hget(f"keel:apikey:{created.key_id}", "tenant") == tenant

    with pytest.raises(RestoreConflict):  # the tenant it came from still has its data
        Restorer(deps).restore(folder, tenant)
