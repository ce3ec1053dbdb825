"""GET /v1/jobs/{id}: state, counters and per-file outcomes of a job, for its own tenant only."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request

from api.deps import RedisDep, SettingsDep, StatusCaller
from api.errors import request_id
from api.schemas import FileResult, JobState
from keel.errors import NotFound
from stores.jobs import JobStore

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.get("/{job_id}", response_model=JobState)
async def get_job(request: Request, job_id: str, settings: SettingsDep, r: RedisDep, caller: StatusCaller) -> JobState:
    tenant = caller.tenant
    store = JobStore(r)
    job = await asyncio.to_thread(store.get, job_id)
    if job is None or job.tenant != tenant:  # another tenant's job is as absent as a missing one
        raise NotFound(f"no job {job_id!r} for tenant {tenant!r}")
    files = [
        FileResult(
            source=f.source,
            status=f.status,
            doc_id=f.doc_id,
            version=f.version,
            chunks=f.chunks,
            duplicates=f.duplicates,
            code=f.code,
            message=f.message,
            temporal_ui_url=settings.temporal_ui_link(f.workflow_id, f.run_id) if f.workflow_id else None,
        )
        for f in await asyncio.to_thread(store.files, job_id)
    ]
    return JobState(
        job_id=job.job_id,
        tenant=job.tenant,
        status=job.status,
        counters=job.counters,
        files=files,
        temporal_ui_url=settings.temporal_ui_link(job.workflow_id),
        request_id=request_id(request),
    )
