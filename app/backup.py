"""Backing up and restoring tenants: start the workflows, wait for them, audit the outcome.

Operator commands (`keel backup`, `keel restore`): the folder is on the worker's filesystem, so
no API route takes one (a tenant admin naming server paths would be a hole). The snapshot format
and what it holds are in `pipelines.backup`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict
from pathlib import Path

import redis
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import WorkflowIDConflictPolicy

from app.failures import reported
from contracts.backup import BackupInput, BackupOutput, RestoreInput, RestoreOutput
from gateway.audit import Audit
from keel.config import Settings
from keel.errors import BadInput, KeelError
from keel.tenancy import check_tenant
from stores.keys import TENANTS_KEY
from workflows.backup import BackupTenantWorkflow, RestoreTenantWorkflow


def tenants_to_back_up(r: redis.Redis, tenant: str | None) -> list[str]:
    if tenant:
        return [check_tenant(tenant)]
    return sorted(str(t) for t in r.smembers(TENANTS_KEY))


async def backup(
    client: Client, settings: Settings, r: redis.Redis, tenants: list[str], directory: Path, actor: str = "operator"
) -> list[BackupOutput]:
    """Snapshot each tenant into `directory/<tenant>`, one after another."""
    directory = directory.resolve()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    done = []
    for tenant in tenants:
        try:
            out = await client.execute_workflow(
                BackupTenantWorkflow.run,
                BackupInput(tenant=tenant, directory=str(directory)),
                id=f"backup/{tenant}/{stamp}",
                task_queue=settings.ingest_task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            )
        except WorkflowFailureError as exc:
            raise reported(exc, KeelError(f"the backup of {tenant} failed: {exc.cause or exc}; run it again")) from exc
        detail = {k: v for k, v in asdict(out).items() if k != "tenant"}
        await asyncio.to_thread(Audit(r).record, tenant, "tenant_backed_up", key_id=actor, **detail)
        done.append(out)
    return done


def snapshots_in(directory: Path, tenant: str | None) -> list[tuple[str, Path]]:
    """(tenant, folder) of each snapshot to restore: one tenant's, or every one in the folder."""
    directory = directory.resolve()
    if tenant:
        return [(check_tenant(tenant), directory / tenant)]
    found = (
        sorted((check_tenant(p.name), p) for p in directory.iterdir() if (p / "manifest.json").is_file())
        if directory.is_dir()
        else []
    )
    if not found:
        raise BadInput(f"{directory} holds no tenant snapshots (folders with a manifest.json)")
    return found


async def restore(
    client: Client,
    settings: Settings,
    r: redis.Redis,
    snapshots: list[tuple[str, Path]],
    actor: str = "operator",
    api_keys: bool = False,
) -> list[RestoreOutput]:
    done = []
    for tenant, folder in snapshots:
        try:
            out = await client.execute_workflow(
                RestoreTenantWorkflow.run,
                RestoreInput(folder=str(folder), tenant=tenant, api_keys=api_keys),
                id=f"restore/{tenant}",
                task_queue=settings.ingest_task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            )
        except WorkflowFailureError as exc:
            raise reported(exc, KeelError(f"the restore of {tenant} failed: {exc.cause or exc}; run it again")) from exc
        detail = {k: v for k, v in asdict(out).items() if k != "tenant"}
        await asyncio.to_thread(Audit(r).record, tenant, "tenant_restored", key_id=actor, folder=str(folder), **detail)
        done.append(out)
    return done
