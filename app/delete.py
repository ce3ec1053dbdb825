"""Deleting a document and erasing a tenant: start the workflow, wait for it, audit the outcome.

Shared by the CLI (`keel delete`, `keel erase-tenant`) and the API (`DELETE /v1/documents/{id}`,
`POST /v1/admin/tenant/erase`). A second request while one runs joins the same run; one after it
finds nothing left and reports so.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import asdict

import redis
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import WorkflowIDConflictPolicy

from app.failures import reported
from contracts.delete import DeleteDocumentInput, DocumentRemoved, EraseTenantInput, TenantErased
from gateway.audit import Audit
from gateway.keys import Principal
from keel.config import Settings
from keel.errors import BadInput, DeleteFailed, KeelError
from workflows.delete import DeleteDocumentWorkflow, EraseTenantWorkflow

_DOC_ID = re.compile(r"^[0-9a-f]{32}$")


def delete_workflow_id(tenant: str, doc_id: str) -> str:
    return f"delete/{tenant}/{doc_id}"


def erase_workflow_id(tenant: str) -> str:
    return f"erase/{tenant}"


def check_doc_id(doc_id: str) -> str:
    if not _DOC_ID.match(doc_id):
        raise BadInput("a document id is 32 hex characters (the `doc_id` of a citation or a job's file)")
    return doc_id


def _failure(exc: WorkflowFailureError) -> KeelError:
    return reported(exc, DeleteFailed(f"the deletion failed: {exc.cause or exc}; it can be run again"))


async def delete_document(
    client: Client, settings: Settings, r: redis.Redis, who: Principal, doc_id: str, request_id: str = ""
) -> DocumentRemoved:
    check_doc_id(doc_id)
    try:
        removed = await client.execute_workflow(
            DeleteDocumentWorkflow.run,
            DeleteDocumentInput(tenant=who.tenant, doc_id=doc_id, writer_groups=list(who.groups)),
            id=delete_workflow_id(who.tenant, doc_id),
            task_queue=settings.ingest_task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
    except WorkflowFailureError as exc:
        raise _failure(exc) from exc
    if removed.found:
        detail = asdict(removed)
        await asyncio.to_thread(
            Audit(r).record, who.tenant, "document_deleted", key_id=who.key_id, request_id=request_id, **detail
        )
    return removed


async def erase_tenant(
    client: Client, settings: Settings, r: redis.Redis, who: Principal, request_id: str = ""
) -> TenantErased:
    try:
        erased = await client.execute_workflow(
            EraseTenantWorkflow.run,
            EraseTenantInput(tenant=who.tenant),
            id=erase_workflow_id(who.tenant),
            task_queue=settings.ingest_task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
    except WorkflowFailureError as exc:
        raise _failure(exc) from exc
    detail = {k: v for k, v in asdict(erased).items() if k != "tenant"}
    await asyncio.to_thread(
        Audit(r).record, who.tenant, "tenant_erased", key_id=who.key_id, request_id=request_id, **detail
    )
    return erased
