"""POST /v1/documents: upload one file; it is ingested by a job of one document.

Staging is the CLI's (`app.staging`), run in a thread: the blob writes must not hold the event
loop, which in the embedded server also runs the Temporal workers.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Form, Request, UploadFile, status

from api.deps import BlobsDep, IngestCaller, RedisDep, SettingsDep, TemporalDep
from api.errors import correlation_id, request_id
from api.schemas import JobAccepted
from app.ingest import batch_workflow_id, new_job_id, start_batch
from app.staging import stage_upload
from index.catalog import Catalog
from ingestion.files import check_name
from keel.errors import FileTooLarge
from keel.tenancy import check_replacement, document_groups

router = APIRouter(prefix="/v1/documents", tags=["documents"])

READ_BLOCK = 1 << 20


async def _read_bounded(upload: UploadFile, limit: int) -> bytes:
    """Read at most `limit` bytes, refusing as soon as the upload goes past it."""
    parts: list[bytes] = []
    total = 0
    while block := await upload.read(READ_BLOCK):
        total += len(block)
        if total > limit:
            raise FileTooLarge(f"the upload is over the limit of {limit:,} bytes")
        parts.append(block)
    return b"".join(parts)


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=JobAccepted)
async def upload_document(
    request: Request,
    file: UploadFile,
    settings: SettingsDep,
    temporal: TemporalDep,
    r: RedisDep,
    blobs: BlobsDep,
    caller: IngestCaller,
    source: Annotated[str | None, Form(description="logical document key; a new upload with it replaces it")] = None,
) -> JobAccepted:
    """The document gets the caller's access groups (its key's, or fewer with X-Keel-Groups)."""
    tenant, groups = caller.tenant, document_groups(caller.groups)
    name = check_name(file.filename or "")
    current = await asyncio.to_thread(Catalog(r).published_groups, tenant, (source or name).strip())
    if current is not None:  # a replacement: refused now rather than failed later in its job
        check_replacement(current, groups, caller.groups)
    data = await _read_bounded(file, min(settings.max_upload_bytes, settings.max_file_bytes))
    job_id = new_job_id()
    staged = await asyncio.to_thread(
        stage_upload,
        blobs,
        tenant,
        job_id,
        filename=name,
        source=source,
        data=data,
        max_bytes=settings.max_file_bytes,
    )
    handle = await start_batch(temporal, settings, r, staged, tenant, groups, writer_groups=caller.groups)
    return JobAccepted(
        job_id=job_id,
        workflow_id=batch_workflow_id(job_id),
        status_url=f"/v1/jobs/{job_id}",
        temporal_ui_url=settings.temporal_ui_link(handle.id),
        request_id=request_id(request),
        correlation_id=correlation_id(request) or None,
    )
