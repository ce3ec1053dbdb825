"""Starting a batch job: stage the files, record the job, start IngestBatchWorkflow.

Shared by the CLI (`keel ingest`) and the API (`POST /v1/documents`).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from pathlib import Path

import redis
from temporalio.client import Client, WorkflowHandle

from ingestion.manifest import StagedBatch, stage_paths
from keel.blobstore import BlobStore
from keel.config import Settings
from keel.contracts import BatchCounters, IngestBatchInput
from keel.jobs import JobStore
from keel.redis_keys import TENANTS_KEY
from vectorstore.visibility import document_groups
from workflows.ingest_batch import IngestBatchWorkflow


def new_job_id() -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"


def batch_workflow_id(job_id: str) -> str:
    return f"ingest-batch/{job_id}"


async def start_batch(
    client: Client,
    settings: Settings,
    r: redis.Redis,
    staged: StagedBatch,
    tenant: str,
    groups: Sequence[str],
) -> WorkflowHandle[IngestBatchWorkflow, BatchCounters]:
    wf_id = batch_workflow_id(staged.job_id)
    groups = document_groups(groups)
    JobStore(r).create(staged.job_id, tenant, groups, wf_id, staged.total)
    r.sadd(TENANTS_KEY, tenant)  # a tenant exists from its first ingest on (queries check it)
    return await client.start_workflow(
        IngestBatchWorkflow.run,
        IngestBatchInput(
            staged.job_id,
            tenant,
            list(groups),
            staged.pages,
            staged.total,
            window=settings.batch_window,
            continue_every=settings.batch_continue_every,
        ),
        id=wf_id,
        task_queue=settings.ingest_task_queue,
    )


def stage(settings: Settings, paths: Sequence[Path], tenant: str, job_id: str | None = None) -> StagedBatch:
    return stage_paths(paths, tenant, job_id or new_job_id(), BlobStore(settings.blob_dir), settings.max_file_bytes)
