"""`KEEL_NEW_TENANT_ENCODER`: a tenant's first ingest starts it on the configured encoder; a tenant
that already has documents or an index keeps its own (moving one is a migration)."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import pytest
import redis

from index.active import DEFAULT_ENCODER, INT8_ENCODER, Indexes, read_state
from ingestion.chunk import CHUNKER_VERSION
from keel.config import Settings
from pipelines.deps import Deps
from pipelines.ingest import IngestSteps, ingest_plain, local_document
from vectorstore.base import Cond, Where

pytestmark = pytest.mark.stack


def _steps(deps: Deps, settings: Settings) -> IngestSteps:
    configured = settings.model_copy(update={"new_tenant_encoder": INT8_ENCODER})
    indexes = Indexes(deps.store, deps.redis, deps.encoders, configured, CHUNKER_VERSION)
    return IngestSteps(dataclasses.replace(deps, indexes=indexes, offload=None))


def _ingest(steps: IngestSteps, tenant: str, folder: Path, name: str) -> int:
    path = folder / name
    path.write_text(f"# {name}\n\nThe {name} pump runs at seven litres a minute in the north wing.\n")
    return ingest_plain(steps, local_document(tenant, path, path.read_bytes()), path.read_bytes())


def test_a_new_tenant_starts_on_the_configured_encoder(
    deps: Deps, settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    steps = _steps(deps, settings)
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    assert _ingest(steps, tenant, tmp_path, "first.md") == 1
    assert read_state(redis_client, tenant).active == INT8_ENCODER
    index = steps.index(tenant)
    assert index.version.model == "all-MiniLM-L6-v2-int8" and index.collection.endswith("-default-int8")
    mine = Where(must=(Cond("tenant", value=tenant),))
    assert deps.store.count(index.collection, mine) == 1  # the chunk is in the int8 index
    default = steps.d.indexes.ensure(steps.d.indexes.index(DEFAULT_ENCODER))
    assert deps.store.count(default.collection, mine) == 0


def test_a_tenant_with_documents_keeps_its_index(
    deps: Deps, settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    assert _ingest(IngestSteps(dataclasses.replace(deps, offload=None)), tenant, tmp_path, "old.md") == 1
    steps = _steps(deps, settings)
    assert _ingest(steps, tenant, tmp_path, "new.md") == 1
    assert read_state(redis_client, tenant).active == DEFAULT_ENCODER


def test_an_unknown_encoder_name_is_refused_at_start(deps: Deps, settings: Settings) -> None:
    with pytest.raises(ValueError, match="KEEL_NEW_TENANT_ENCODER"):
        Indexes(deps.store, deps.redis, deps.encoders, settings.model_copy(update={"new_tenant_encoder": "nope"}), "c1")
