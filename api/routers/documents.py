"""POST /v1/documents: upload one file; it is ingested by a job of one document."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, UploadFile, status

from api.deps import GroupsDep, RedisDep, SettingsDep, TemporalDep, TenantDep
from api.errors import request_id
from api.schemas import JobAccepted
from ingestion.files import check_name, classify
from ingestion.manifest import StagedBatch
from keel.batches import batch_workflow_id, new_job_id, start_batch
from keel.blobstore import BlobStore, manifest_page_key, raw_key
from keel.contracts import ManifestEntry
from keel.errors import BadInput, FileTooLarge
from keel.ids import sha256_bytes

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
    tenant: TenantDep,
    groups: GroupsDep,
    source: Annotated[str | None, Form(description="logical document key; a new upload with it replaces it")] = None,
) -> JobAccepted:
    name = check_name(file.filename or "")
    data = await _read_bounded(file, min(settings.max_upload_bytes, settings.max_file_bytes))
    classify(name, len(data), settings.max_file_bytes)  # empty, too large, unsupported: refused now
    doc_source = (source or name).strip()
    if not doc_source or len(doc_source) > 1024 or not doc_source.isprintable():
        raise BadInput("source must be 1-1024 printable characters")

    version = sha256_bytes(data)
    blobs = BlobStore(settings.blob_dir)
    key = raw_key(tenant, version)
    if not blobs.exists(key):
        blobs.put(key, data)
    job_id = new_job_id()
    entry = ManifestEntry(source=doc_source, filename=name, version=version, blob_key=key, size=len(data))
    blobs.put_json(manifest_page_key(job_id, 0), [vars(entry)])
    handle = await start_batch(temporal, settings, r, StagedBatch(job_id, 1, 1, 0), tenant, groups)
    return JobAccepted(
        job_id=job_id,
        workflow_id=batch_workflow_id(job_id),
        status_url=f"/v1/jobs/{job_id}",
        temporal_ui_url=settings.temporal_ui_link(handle.id),
        request_id=request_id(request),
    )
