"""Ingest jobs: stage the files, record the job, start IngestBatchWorkflow, follow its progress.

Shared by the CLI (`keel ingest`) and the API (`POST /v1/documents`). Redis writes run in a
thread: in the API (and the embedded server) the event loop also runs the Temporal workers.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import redis
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError

from app.staging import StagedBatch, stage_paths
from contracts.batch import BatchCounters, BatchProgress, IngestBatchInput
from index.catalog import Catalog
from keel.config import Settings
from keel.errors import GroupNotHeld, TemporalUnavailable
from keel.tenancy import document_groups, holds
from stores.blobs import BlobStore
from stores.jobs import JobStore
from workflows.ingest_batch import IngestBatchWorkflow


def new_job_id(tenant: str) -> str:
    """`<tenant>.<when>-<random>`: a job's workflows are named by it, and the tenant in the name
    is what binds their payloads to the tenant's own data key (`keel.ids.workflow_tenant`)."""
    return f"{tenant}.{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"


def batch_workflow_id(job_id: str) -> str:
    return f"ingest-batch/{job_id}"


def stage(settings: Settings, paths: Sequence[Path], tenant: str, job_id: str | None = None) -> StagedBatch:
    return stage_paths(
        paths, tenant, job_id or new_job_id(tenant), BlobStore(settings.blob_dir), settings.max_file_bytes
    )


async def start_batch(
    client: Client,
    settings: Settings,
    r: redis.Redis,
    staged: StagedBatch,
    tenant: str,
    groups: Sequence[str],
    writer_groups: Sequence[str] | None = None,
) -> WorkflowHandle[IngestBatchWorkflow, BatchCounters]:
    """Start the job. `writer_groups` are the asking principal's (None: a trusted operator): the
    documents may get only groups it holds, and each replacement is checked against them."""
    wf_id = batch_workflow_id(staged.job_id)
    doc_groups = document_groups(groups)
    if writer_groups is not None and not holds(writer_groups, doc_groups):
        raise GroupNotHeld(f"the key cannot give documents groups it does not hold: {doc_groups}")

    def record() -> None:
        JobStore(r).create(staged.job_id, tenant, doc_groups, wf_id, staged.total)
        Catalog(r).add_tenant(tenant)

    await asyncio.to_thread(record)
    return await client.start_workflow(
        IngestBatchWorkflow.run,
        IngestBatchInput(
            job_id=staged.job_id,
            tenant=tenant,
            groups=list(doc_groups),
            pages=staged.pages,
            total=staged.total,
            window=settings.batch_window,
            group_size=settings.ingest_group_size,
            continue_every=settings.batch_continue_every,
            writer_groups=list(writer_groups) if writer_groups is not None else None,
        ),
        id=wf_id,
        task_queue=settings.ingest_task_queue,
    )


async def follow(
    client: Client, job_id: str, every_s: float = 0.5, outage_s: float = 120.0
) -> AsyncIterator[BatchProgress | None]:
    """The batch's progress every `every_s` until its workflow ends (None when a poll missed).

    Temporal going away (a restart) is waited out: polls keep failing quietly (None) and resume
    when it is back; after `outage_s` of nothing, TemporalUnavailable says the job runs on and how
    to look at it later.
    """
    handle = client.get_workflow_handle(batch_workflow_id(job_id))
    lost_since: float | None = None
    while True:
        try:
            desc = await handle.describe()
        except RPCError as exc:
            now = time.monotonic()
            lost_since = lost_since or now
            if now - lost_since > outage_s:
                raise TemporalUnavailable(
                    f"Temporal has been unreachable for {outage_s:.0f} s ({exc.message}); the job keeps its state: "
                    f"`keel job {job_id}` shows it once Temporal is back"
                ) from exc
            yield None
            await asyncio.sleep(min(5.0, every_s * 4))
            continue
        lost_since = None
        try:
            yield await handle.query(IngestBatchWorkflow.progress)
        except Exception:  # a query can fail while the run continues-as-new; try again
            yield None
        if desc.status != WorkflowExecutionStatus.RUNNING:
            return
        await asyncio.sleep(every_s)
