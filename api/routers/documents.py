"""POST /v1/documents: upload one file, ingested by a job of one document; GET reads one as the
key may see it; DELETE removes one.

The multipart body is parsed in the handler, after the key and its role are checked: FastAPI
parses a declared `UploadFile` before any dependency runs, which would let a caller without a
key make the server spool a whole upload. Staging is the CLI's (`app.staging`), run in a thread:
the blob writes must not hold the event loop, which in the embedded server also runs the workers.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request, status
from starlette.datastructures import FormData, UploadFile

from api.deps import BlobsDep, IngestCaller, ReadCaller, RedisDep, SettingsDep, TemporalDep, on_edge
from api.errors import correlation_id, request_id
from api.schemas import DocumentDeleted, DocumentOut, JobAccepted, RemovedOut
from app.delete import check_doc_id, delete_document, delete_workflow_id
from app.ingest import batch_workflow_id, new_job_id, start_batch
from app.reading import read_document
from app.staging import stage_upload
from index.catalog import Catalog
from ingestion.files import check_name
from keel.errors import BadInput, FileTooLarge, IndexNotHere
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


UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "source": {
                            "type": "string",
                            "description": "logical document key; a new upload with it replaces it",
                        },
                    },
                }
            }
        },
    }
}


async def _form(request: Request) -> tuple[UploadFile, str | None]:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise BadInput("send the file as multipart/form-data, in a field named `file`")
    try:
        form: FormData = await request.form(max_files=1, max_fields=8, max_part_size=64 * 1024)
    except Exception as exc:  # Starlette's MultiPartException and malformed bodies alike
        raise BadInput(f"the multipart body could not be read: {getattr(exc, 'message', 'malformed')}") from exc
    file, source = form.get("file"), form.get("source")
    if not isinstance(file, UploadFile):
        raise BadInput("send the file as multipart/form-data, in a field named `file`")
    if source is not None and not isinstance(source, str):
        raise BadInput("`source` must be a text field")
    return file, source


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=JobAccepted, openapi_extra=UPLOAD_BODY)
async def upload_document(
    request: Request,
    settings: SettingsDep,
    temporal: TemporalDep,
    r: RedisDep,
    blobs: BlobsDep,
    caller: IngestCaller,
) -> JobAccepted:
    """The document gets the caller's access groups (its key's, or fewer with X-Keel-Groups)."""
    tenant, groups = caller.tenant, document_groups(caller.groups)
    file, source = await _form(request)
    name = check_name(file.filename or "")
    current = await asyncio.to_thread(Catalog(r).published_groups, tenant, (source or name).strip())
    if current is not None:  # a replacement: refused now rather than failed later in its job
        check_replacement(current, groups, caller.groups)
    data = await _read_bounded(file, min(settings.max_upload_bytes, settings.max_file_bytes))
    job_id = new_job_id(tenant)
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


@router.get("/{doc_id}", response_model=DocumentOut)
async def read(doc_id: str, request: Request, r: RedisDep, caller: ReadCaller) -> DocumentOut:
    """A document's text as indexed (redacted where the tenant's policy redacts), chunk by chunk, if
    the key's groups may read it; otherwise 404, as for a document that does not exist."""
    check_doc_id(doc_id)
    indexes = request.app.state.indexes
    if indexes is None:
        raise IndexNotHere("this API process does not open the index: ask one that shares the workers' indexes")
    view = await on_edge(request, read_document, indexes, r, caller.tenant, list(caller.groups), doc_id)
    return DocumentOut.model_validate(view, from_attributes=True)


@router.delete("/{doc_id}", response_model=DocumentDeleted)
async def delete(
    doc_id: str, request: Request, settings: SettingsDep, temporal: TemporalDep, r: RedisDep, caller: IngestCaller
) -> DocumentDeleted:
    """Remove a document for good: its points, record, dedupe entries and blobs. The key must hold
    every group of the document; a second call finds nothing and says `absent`."""
    removed = await delete_document(temporal, settings, r, caller, doc_id, request_id(request))
    return DocumentDeleted(
        doc_id=doc_id,
        status="deleted" if removed.found else "absent",
        removed=RemovedOut.model_validate(removed, from_attributes=True),
        workflow_id=delete_workflow_id(caller.tenant, doc_id),
        request_id=request_id(request),
    )
