"""Reading a document as the caller may see it: its chunks, in order, from the index.

The same filter retrieval uses (`index.visibility.visible_at`: tenant, the key's access groups,
the tenant's published generation) picks the points, so a key reads exactly what it could be
answered from, and a document it may not read is not found (its existence is not told). The text is
as indexed: redacted where the tenant's PII policy redacted it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import redis

from contracts.query import Candidate
from index.active import Indexes
from index.catalog import Catalog
from index.visibility import document_visible_at
from keel.errors import DocumentNotFound, UnknownTenant
from retrieval.retriever import candidate

MAX_CHUNKS = 5000  # a document past this many chunks is read in part (`truncated`)
PAGE = 512


@dataclass(frozen=True, kw_only=True)
class Chunk:
    index: int
    section_path: list[str]
    text: str


@dataclass(frozen=True, kw_only=True)
class DocumentView:
    doc_id: str
    version: str
    source: str
    title: str
    chunks: list[Chunk]
    truncated: bool


def read_document(indexes: Indexes, r: redis.Redis, tenant: str, groups: Sequence[str], doc_id: str) -> DocumentView:
    catalog = Catalog(r)
    if not catalog.has_tenant(tenant):
        raise UnknownTenant(f"tenant {tenant!r} has never ingested a document")
    index = indexes.active(tenant)
    where = document_visible_at(tenant, catalog.generation(tenant), groups, doc_id)
    found: list[Candidate] = []
    offset: str | None = None
    while len(found) < MAX_CHUNKS:
        hits, offset = indexes.store.scroll(index.collection, where, PAGE, offset)
        found += [candidate(h) for h in hits]
        if offset is None:
            break
    if not found:
        raise DocumentNotFound(f"no document {doc_id} this key may read")
    found.sort(key=lambda c: c.chunk_index)
    first = found[0]
    return DocumentView(
        doc_id=doc_id,
        version=first.version,
        source=first.source,
        title=first.title,
        chunks=[Chunk(index=c.chunk_index, section_path=c.section_path, text=c.text) for c in found[:MAX_CHUNKS]],
        truncated=offset is not None,
    )
