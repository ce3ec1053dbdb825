"""Workflow and activity contracts: one dataclass in and one out per step.

They carry keys and small facts, never file bytes, element lists or vectors (those live in the
blob store), so histories stay small and replay stays fast. New fields get defaults so running
workflows keep decoding old payloads.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DocumentRef:
    tenant: str
    groups: list[str]
    source: str  # the logical document: an absolute path, or the upload's name
    filename: str  # display name; its extension picks the parser
    version: str  # sha256 of the bytes
    blob_key: str
    size: int


@dataclass
class ManifestEntry:
    source: str
    filename: str
    version: str | None = None
    blob_key: str | None = None
    size: int = 0
    error_code: str | None = None  # refused while staging (too large, unsupported, unreadable)
    error_message: str | None = None


# -- document workflow -------------------------------------------------------------------------
@dataclass
class IngestDocumentInput:
    doc: DocumentRef


@dataclass
class IngestDocumentOutput:
    doc_id: str
    version: str
    status: str  # ingested | unchanged
    chunks: int = 0
    duplicates: int = 0
    pii: dict[str, int] = field(default_factory=dict)
    generation: int = 0


@dataclass
class BeginInput:
    doc: DocumentRef


@dataclass
class BeginOutput:
    doc_id: str
    unchanged: bool
    # This very run published the version already: a crash lost the record of that, and the
    # re-run begin (local activities run again on replay) hands back the run's own outcome.
    published_here: IngestDocumentOutput | None = None


@dataclass
class ParseInput:
    doc: DocumentRef


@dataclass
class ParseOutput:
    elements_key: str
    elements: int
    title: str
    encoding: str | None = None


@dataclass
class ChunkInput:
    doc: DocumentRef
    elements_key: str


@dataclass
class ChunkOutput:
    chunks_key: str
    chunks: int
    tokens: int


@dataclass
class RedactInput:
    doc: DocumentRef
    chunks_key: str
    title: str


@dataclass
class RedactOutput:
    chunks_key: str
    title: str  # redacted too: titles carry names
    pii: dict[str, int] = field(default_factory=dict)


@dataclass
class DedupeInput:
    doc: DocumentRef
    doc_id: str
    chunks_key: str


@dataclass
class DedupeOutput:
    chunks_key: str
    kept: int
    duplicates: int


@dataclass
class EmbedInput:
    doc: DocumentRef
    chunks_key: str
    title: str


@dataclass
class EmbedOutput:
    vectors_key: str
    count: int
    embedding_version: str


@dataclass
class UpsertInput:
    doc: DocumentRef
    doc_id: str
    chunks_key: str
    vectors_key: str
    title: str


@dataclass
class UpsertOutput:
    points: int


@dataclass
class StageInput:
    doc: DocumentRef
    doc_id: str


@dataclass
class StageOutput:
    """A document's points written (invisible) and what its record will say once published."""

    title: str
    chunks: int  # kept after dedupe
    duplicates: int
    embedding_version: str
    pii: dict[str, int] = field(default_factory=dict)
    encoding: str | None = None


@dataclass
class PublishInput:
    doc: DocumentRef
    doc_id: str
    title: str
    chunks: int
    duplicates: int
    embedding_version: str
    pii: dict[str, int] = field(default_factory=dict)
    encoding: str | None = None


@dataclass
class PublishOutput:
    generation: int
    already_published: bool = False


# -- batch workflow ----------------------------------------------------------------------------
@dataclass
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


@dataclass
class BatchCounters:
    total: int = 0
    done: int = 0
    ingested: int = 0
    unchanged: int = 0
    failed: int = 0
    chunks: int = 0
    duplicates: int = 0


@dataclass
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


@dataclass
class BatchProgress:
    job_id: str
    status: str
    counters: BatchCounters
    in_flight: int


@dataclass
class ManifestPageInput:
    job_id: str
    page: int


@dataclass
class ManifestPageOutput:
    entries: list[ManifestEntry]


@dataclass
class RecordOutcomesInput:
    job_id: str
    outcomes: list[FileOutcome]
    counters: BatchCounters
    status: str
