"""A side index filled page by page while the tenant ingests and deletes: writes reach both
indexes, the backfill never undoes them, and the result equals the active index chunk for chunk."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from temporalio.client import Client

from app.delete import delete_document
from gateway.keys import INGEST, KeyStore
from index.active import DEFAULT_ENCODER, IndexState
from index.lifecycle import Lifecycle
from keel import ids
from keel.config import Settings
from keel.errors import BadInput, MigrationConflict
from pipelines.deps import Deps
from pipelines.migrate import Migrator, chunk_key
from tests.helpers import ingest
from vectorstore.base import Cond, Where

pytestmark = [pytest.mark.stack, pytest.mark.usefixtures("worker")]

TARGET = "default-w128"


def write_docs(folder: Path, n: int, tag: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"{tag}-{i}.md"
        path.write_text(
            f"# {tag} note {i}\n\nThe {tag} record {i} says the pump {i} runs at {i * 3 + 7} litres a minute."
        )
        paths.append(path)
    return paths


def chunks(deps: Deps, collection: str, tenant: str) -> dict[tuple[str, str, int], tuple[int, int, str]]:
    """chunk -> (visible_from, visible_until, text) of the tenant's points in one collection."""
    out = {}
    offset = None
    while True:
        hits, offset = deps.store.scroll(collection, Where(must=(Cond("tenant", value=tenant),)), 256, offset)
        for h in hits:
            p = h.payload
            out[chunk_key(p)] = (int(p["visible_from"]), int(p["visible_until"]), str(p["text"]))
        if offset is None:
            return out


async def test_backfill_with_ingest_and_delete_in_between(
    client: Client, settings: Settings, redis_client: redis.Redis, deps: Deps, tenant: str, tmp_path: Path
) -> None:
    first = write_docs(tmp_path / "a", 8, "alpha")
    counters, _ = await ingest(client, settings, redis_client, first, tenant)
    assert counters.ingested == 8

    life = Lifecycle(redis_client, deps.indexes.catalog)
    migrator = Migrator(deps)
    state = life.begin(tenant, "m1", TARGET)
    assert state == IndexState(active=DEFAULT_ENCODER, side=TARGET, side_state="backfilling", migration="m1")
    with pytest.raises(MigrationConflict):
        life.begin(tenant, "m2", TARGET)  # one migration per tenant
    with pytest.raises(BadInput):
        Lifecycle(redis_client, deps.indexes.catalog).begin(f"{tenant}x", "m3", DEFAULT_ENCODER)  # already active
    source, target = deps.indexes.index(DEFAULT_ENCODER), deps.indexes.index(TARGET)
    assert [i.name for i in deps.indexes.targets(tenant)] == [DEFAULT_ENCODER, TARGET]

    page = migrator.copy_page(tenant, source, target, None, 3)  # part of the way
    assert page.copied == 3 and page.next_offset is not None

    # Meanwhile: a new document, a replaced one, a deleted one.
    added = write_docs(tmp_path / "b", 2, "beta")
    first[0].write_text("# alpha note 0\n\nThe pump 0 was replaced; it now runs at 99 litres a minute.")
    await ingest(client, settings, redis_client, [*added, first[0]], tenant)
    writer = KeyStore(redis_client).create(tenant=tenant, roles=[INGEST])[0].principal()
    gone = ids.document_id(tenant, str(first[1]))
    assert (await delete_document(client, settings, redis_client, writer, gone)).found

    offset: str | None = page.next_offset
    while offset is not None:
        page = migrator.copy_page(tenant, source, target, offset, 3)
        offset = page.next_offset
    assert migrator.reconcile(tenant, source, target) == (0, 0)  # dual writes kept the side index whole

    old, new = chunks(deps, source.collection, tenant), chunks(deps, target.collection, tenant)
    assert new == old  # the same chunks, the same visibility, the same text
    assert not any(doc == gone for doc, _, _ in new)
    texts = [t for _, _, t in new.values()]
    assert any("99 litres" in t for t in texts) and any("beta record 1" in t for t in texts)
    hits, _ = deps.store.scroll(target.collection, Where(must=(Cond("tenant", value=tenant),)), 1)
    assert hits[0].payload["embedding_version"] == target.version.key == "all-MiniLM-L6-v2.d384.norm.w128.c1"

    # Cancelled: the side index lets go, and its points go with it.
    assert life.abandon(tenant, "m1") == TARGET
    assert migrator.drop_tenant(tenant, target) == len(new)
    assert not (settings.qdrant_path / target.collection).exists()  # no tenant uses it: the collection went too
    assert [i.name for i in deps.indexes.targets(tenant)] == [DEFAULT_ENCODER]
