"""DeleteDocumentWorkflow and EraseTenantWorkflow: what to remove, and what was removed."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(kw_only=True)
class DeleteDocumentInput:
    tenant: str
    doc_id: str
    # The asking principal's groups: it must hold every group of the document. None: a trusted operator.
    writer_groups: list[str] | None = None


@dataclass(kw_only=True)
class DocumentRemoved:
    doc_id: str
    found: bool  # False: there was nothing to remove (never ingested here, or deleted already)
    versions: int = 0  # versions whose leftovers were removed
    points: int = 0
    dedupe_entries: int = 0
    blobs: int = 0
    rehomed: int = 0  # other documents' chunks that had deferred to this one's and are stored again


@dataclass(kw_only=True)
class EraseTenantInput:
    tenant: str


@dataclass(kw_only=True)
class Conversations:
    """A tenant's durable conversations (their ids), which its erasure ends first."""

    ids: list[str]


@dataclass(kw_only=True)
class TenantErased:
    tenant: str
    documents: int = 0
    points: int = 0
    redis_keys: int = 0
    blobs: int = 0
    jobs: int = 0
