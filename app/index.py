"""Embedding migrations: start one, read it, approve, cancel, roll back, release.

Shared by the CLI (`keel index ...`, an operator's) and the API (`/v1/admin/index/...`, a tenant
admin's, for its own tenant). Every action is audited. A rollback is a direct switch of the
tenant's index hash (instant, `index.lifecycle`); the workflow is then told, so it ends the
retention and empties the index the tenant left.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import redis
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from contracts.index import PREPARING, GoldenQuery, MigrationInput
from gateway.audit import Audit
from index.active import encoder_catalog
from index.lifecycle import Lifecycle
from keel.config import Settings
from keel.errors import AlreadyActive, BadInput, InvalidGolden, MigrationConflict, MigrationNotFound, UnknownEncoder
from workflows.backfill_index import BackfillIndexWorkflow, migration_workflow_id

MAX_GOLDEN_QUERIES = 5000


def lifecycle(settings: Settings, r: redis.Redis) -> Lifecycle:
    return Lifecycle(r, encoder_catalog(settings))


def check_golden(golden: Sequence[GoldenQuery]) -> list[GoldenQuery]:
    if len(golden) > MAX_GOLDEN_QUERIES:
        raise InvalidGolden(f"a golden set has at most {MAX_GOLDEN_QUERIES} queries, not {len(golden)}")
    for q in golden:
        if not q.query.strip() or len(q.query) > 2000:
            raise InvalidGolden("each golden query needs a question of 1 to 2000 characters")
        if not q.relevant or any(not isinstance(g, int) or g < 0 for g in q.relevant.values()):
            raise InvalidGolden("each golden query names its relevant documents with grades (integers >= 0)")
    return list(golden)


async def start_migration(
    client: Client,
    settings: Settings,
    r: redis.Redis,
    tenant: str,
    target: str,
    *,
    golden: Sequence[GoldenQuery] = (),
    max_drop: float = 0.01,
    min_overlap: float = 0.0,
    shadow_wait_s: float | None = None,
    auto_flip: bool = True,
    force: bool = False,
    retention_s: float | None = None,
    actor: str = "operator",
    request_id: str = "",
) -> tuple[str, WorkflowHandle[Any, Any]]:
    """Start the tenant's migration to encoder `target`; refused while another one holds the tenant."""
    life = lifecycle(settings, r)
    state = await asyncio.to_thread(life.state, tenant)
    life_catalog = life.catalog
    if target not in life_catalog:
        raise UnknownEncoder(f"no encoder named {target!r}; the configured ones: {', '.join(sorted(life_catalog))}")
    if target == state.active:
        raise AlreadyActive(f"tenant {tenant!r} already reads the {target!r} index")
    if not 0 <= max_drop <= 1 or not 0 <= min_overlap <= 1:
        raise BadInput("max_drop and min_overlap are between 0 and 1")
    migration_id = uuid.uuid4().hex[:12]
    inp = MigrationInput(
        tenant=tenant,
        migration_id=migration_id,
        target=target,
        golden=check_golden(golden),
        max_drop=max_drop,
        min_overlap=min_overlap,
        shadow_wait_s=settings.shadow_wait_s if shadow_wait_s is None else max(0.0, shadow_wait_s),
        auto_flip=auto_flip,
        force=force,
        retention_s=settings.index_retention_s if retention_s is None else max(0.0, retention_s),
        page=settings.backfill_page,
    )
    try:
        handle = await client.start_workflow(
            BackfillIndexWorkflow.run,
            inp,
            id=migration_workflow_id(tenant),
            task_queue=settings.ingest_task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        )
    except WorkflowAlreadyStartedError as exc:
        raise MigrationConflict(f"a migration of tenant {tenant!r} is running; one at a time") from exc
    announced = {"tenant": tenant, "target": target, "state": PREPARING, "workflow_id": handle.id}
    await asyncio.to_thread(life.create, tenant, migration_id, announced, overwrite=False)
    await asyncio.to_thread(
        Audit(r).record,
        tenant,
        "index_migration_started",
        key_id=actor,
        request_id=request_id,
        migration_id=migration_id,
        target=target,
        golden_queries=len(inp.golden),
    )
    return migration_id, handle


def migration_record(settings: Settings, r: redis.Redis, tenant: str, migration_id: str = "") -> dict[str, Any]:
    """A migration's record (the latest when no id is given), with the tenant's index state."""
    life = lifecycle(settings, r)
    if not migration_id:
        ids = life.migrations(tenant, 1)
        if not ids:
            raise MigrationNotFound(f"tenant {tenant!r} has no migrations")
        migration_id = ids[0]
    record = life.record(tenant, migration_id)
    record["index"] = asdict(life.state(tenant))
    return record


async def _signal(client: Client, tenant: str, name: str) -> None:
    handle = client.get_workflow_handle(migration_workflow_id(tenant))
    try:
        await handle.signal(name)
    except RPCError as exc:
        raise MigrationNotFound(f"no migration of tenant {tenant!r} is running ({exc.message})") from exc


async def approve(client: Client, r: redis.Redis, tenant: str, actor: str = "operator", request_id: str = "") -> None:
    await _signal(client, tenant, "approve")
    await asyncio.to_thread(Audit(r).record, tenant, "index_migration_approved", key_id=actor, request_id=request_id)


async def release(client: Client, r: redis.Redis, tenant: str, actor: str = "operator", request_id: str = "") -> None:
    await _signal(client, tenant, "release")
    await asyncio.to_thread(Audit(r).record, tenant, "index_released", key_id=actor, request_id=request_id)


async def cancel(client: Client, r: redis.Redis, tenant: str, actor: str = "operator", request_id: str = "") -> None:
    handle = client.get_workflow_handle(migration_workflow_id(tenant))
    try:
        await handle.cancel()
    except RPCError as exc:
        raise MigrationNotFound(f"no migration of tenant {tenant!r} is running ({exc.message})") from exc
    await asyncio.to_thread(Audit(r).record, tenant, "index_migration_cancelled", key_id=actor, request_id=request_id)


async def rollback(
    client: Client, settings: Settings, r: redis.Redis, tenant: str, actor: str = "operator", request_id: str = ""
) -> dict[str, Any]:
    """Switch the tenant back to the index its last flip replaced, now; then let the workflow end."""
    migration_id, left, ms = await asyncio.to_thread(lifecycle(settings, r).rollback, tenant)
    # When the workflow is gone the switch stands all the same; the index left stays until released.
    with contextlib.suppress(MigrationNotFound):
        await _signal(client, tenant, "rolled_back")
    await asyncio.to_thread(
        Audit(r).record,
        tenant,
        "index_rolled_back",
        key_id=actor,
        request_id=request_id,
        migration_id=migration_id,
        left=left,
        rollback_ms=round(ms, 3),
    )
    return {"migration_id": migration_id, "left": left, "rollback_ms": round(ms, 3)}
