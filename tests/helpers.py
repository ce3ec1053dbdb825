"""Small helpers the workflow and API tests share."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import redis
from temporalio.client import Client

from ingestion.pipeline import IngestDeps
from keel import ids
from keel.batches import stage, start_batch
from keel.config import Settings
from keel.contracts import BatchCounters
from keel.jobs import FileOutcome, JobStore
from keel.redis_keys import generation_key
from vectorstore.base import Cond, Where
from vectorstore.visibility import visible_at


async def ingest(
    client: Client,
    settings: Settings,
    r: redis.Redis,
    paths: Sequence[Path],
    tenant: str,
    groups: Sequence[str] = (),
) -> tuple[BatchCounters, dict[str, FileOutcome]]:
    staged = stage(settings, list(paths), tenant)
    handle = await start_batch(client, settings, r, staged, tenant, list(groups))
    counters = await handle.result()
    outcomes = {Path(o.source).name: o for o in JobStore(r).files(staged.job_id)}
    return counters, outcomes


def points_of(deps: IngestDeps, tenant: str, source: Path | str) -> int:
    doc_id = ids.document_id(tenant, str(source))
    where = Where(must=(Cond("tenant", value=tenant), Cond("doc_id", value=doc_id)))
    return deps.store.count(deps.settings.collection, where)


def visible_texts(deps: IngestDeps, r: redis.Redis, tenant: str, groups: Sequence[str] = ()) -> list[str]:
    gen = int(r.get(generation_key(tenant)) or 0)
    hits, _ = deps.store.scroll(deps.settings.collection, visible_at(tenant, gen, groups), limit=1000)
    return sorted(h.payload["text"] for h in hits)
