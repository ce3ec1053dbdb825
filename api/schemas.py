"""HTTP schemas, separate from workflow contracts so either can change without breaking the other."""

from __future__ import annotations

from pydantic import BaseModel


class JobAccepted(BaseModel):
    job_id: str
    workflow_id: str
    status_url: str
    temporal_ui_url: str
    request_id: str


class FileResult(BaseModel):
    source: str
    status: str
    doc_id: str | None = None
    version: str | None = None
    chunks: int = 0
    duplicates: int = 0
    code: str | None = None
    message: str | None = None
    temporal_ui_url: str | None = None


class JobState(BaseModel):
    job_id: str
    tenant: str
    status: str
    counters: dict[str, int]
    files: list[FileResult]
    temporal_ui_url: str
    request_id: str
