"""IngestBatchWorkflow and its bookkeeping activities: manifest pages, per-file outcomes, counters.

The manifest lives in the blob store as pages of entries (keys and hashes, never bytes).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(kw_only=True)
class ManifestEntry:
    source: str
    filename: str
    version: str | None = None
    blob_key: str | None = None
    size: int = 0
    error_code: str | None = None  # refused while staging (too large, unsupported, unreadable)
    error_message: str | None = None


@dataclass(kw_only=True)
class FileOutcome:
    source: str
    status: str  # ingested | unchanged | failed
    doc_id: str | None = None
    version: str | None = None
    chunks: int = 0
    duplicates: int = 0
    code: str | None = None
    message: str | None = None
    workflow_id: str | None = None
    run_id: str | None = None
    ui_url: str | None = None


@dataclass(kw_only=True)
class BatchCounters:
    total: int = 0
    done: int = 0
    ingested: int = 0
    unchanged: int = 0
    failed: int = 0
    chunks: int = 0
    duplicates: int = 0


@dataclass(kw_only=True)
class IngestBatchInput:
    job_id: str
    tenant: str
    groups: list[str]
    pages: int  # manifest pages in the blob store
    total: int
    next_page: int = 0
    next_index: int = 0  # within next_page
    counters: BatchCounters = field(default_factory=BatchCounters)
    window: int = 16
    continue_every: int = 500
    writer_groups: list[str] | None = None  # see DocumentRef.writer_groups
    # Small documents per IngestGroupWorkflow (Settings.ingest_group_size); 1: each its own
    # IngestDocumentWorkflow, as every batch started before groups did.
    group_size: int = 1


@dataclass(kw_only=True)
class BatchProgress:
    job_id: str
    status: str
    counters: BatchCounters
    in_flight: int


@dataclass(kw_only=True)
class ManifestPageInput:
    job_id: str
    page: int


@dataclass(kw_only=True)
class ManifestPageOutput:
    entries: list[ManifestEntry]


@dataclass(kw_only=True)
class RecordOutcomesInput:
    job_id: str
    outcomes: list[FileOutcome]
    counters: BatchCounters
    status: str
