"""The ingestion steps over in-memory data, shared by the activities and the plain loop.

`IngestActivities` wraps each step with blob-store reads and writes (so histories carry keys) and
heartbeats; `ingest_plain` chains the same steps in one process with no orchestration, which is
the baseline `make bench-ingest` compares the workflows against.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import redis

from ingestion.chunk import Chunk, ChunkConfig, chunk_elements
from ingestion.dedupe import Deduper
from ingestion.embed import Embedder, embedding_text
from ingestion.parse import Element, ParsedDocument, parse_document
from ingestion.redact import Redactor, merge_counts
from ingestion.sparse import SparseEncoder
from keel import ids
from keel.blobstore import BlobStore, work_key
from keel.config import Settings
from keel.contracts import BeginOutput, DocumentRef, IngestDocumentOutput, StageOutput
from keel.redis_keys import doc_key, generation_key, publish_lock_key, tenant_docs_key
from vectorstore.base import ChunkPoint, Cond, VectorStore, Where
from vectorstore.visibility import NEVER


@dataclass
class IngestDeps:
    """Everything the steps need, built once per process (models load here, never per call)."""

    settings: Settings
    blobs: BlobStore
    redis: redis.Redis
    store: VectorStore
    embedder: Embedder
    redactor: Redactor
    sparse: SparseEncoder


@dataclass
class Published:
    generation: int
    already_published: bool = False


class Steps:
    def __init__(self, deps: IngestDeps, gil_gate: contextlib.AbstractContextManager[Any] | None = None) -> None:
        self.d = deps
        # Held around the pure-Python steps when documents run side by side (see
        # Settings.gil_step_slots); the embedding pass runs outside it since torch releases the GIL.
        self.gil_gate = gil_gate or contextlib.nullcontext()
        s = deps.settings
        self.deduper = Deduper(deps.redis, s.dedupe_threshold)
        self.chunk_config = ChunkConfig(s.chunk_min_tokens, s.chunk_max_tokens, s.chunk_overlap_tokens)
        self._collection_ready = False

    @property
    def collection(self) -> str:
        """The collection name, created on first use: a worker starts even while a Qdrant server is
        down, and the steps that need it fail with a retryable `vector_store_unavailable`."""
        if not self._collection_ready:
            self.d.store.ensure_collection(self.d.settings.collection, self.d.embedder.version.dim)
            self._collection_ready = True
        return self.d.settings.collection

    def begin(self, doc: DocumentRef, run_id: str = "") -> BeginOutput:
        """Is this exact version already published? If not, mark it in flight.

        `run_id` is the workflow run's: a version this same run published (before a crash made
        it run begin again) is its own outcome, "ingested", not a repeat ingest's "unchanged".
        """
        doc_id = ids.document_id(doc.tenant, doc.source)
        key = doc_key(doc.tenant, doc_id)
        record = {_s(k): _s(v) for k, v in self.d.redis.hgetall(key).items()}
        if record.get("version") == doc.version:
            if run_id and record.get("published_run") == run_id:
                return BeginOutput(doc_id, True, published_here=published_output(doc_id, doc.version, record))
            return BeginOutput(doc_id, True)
        self.d.redis.hset(key, mapping={"staging": doc.version, "source": doc.source})
        return BeginOutput(doc_id, False)

    def parse(self, doc: DocumentRef, data: bytes) -> ParsedDocument:
        s = self.d.settings
        return parse_document(data, doc.filename, s.max_file_bytes, s.decode_legacy_text)

    def chunk(self, elements: Sequence[Element]) -> list[Chunk]:
        return chunk_elements(elements, self.d.embedder.count_tokens, self.chunk_config)

    def redact(self, title: str, chunks: list[Chunk]) -> tuple[str, list[Chunk], dict[str, int]]:
        """Chunk text, section titles and the document title: names hide in headings too."""
        redactor = self.d.redactor
        red_title = redactor.redact(title)
        counts = [red_title.counts]
        headings: dict[str, str] = {}  # each heading is redacted (and counted) once, not per chunk
        for c in chunks:
            body = redactor.redact(c.text)
            counts.append(body.counts)
            for heading in c.section_path:
                if heading not in headings:
                    red = redactor.redact(heading)
                    headings[heading] = red.text
                    counts.append(red.counts)
            c.text, c.section_path = body.text, [headings[h] for h in c.section_path]
        return red_title.text, chunks, merge_counts(counts)

    def dedupe(self, doc: DocumentRef, doc_id: str, chunks: list[Chunk]) -> tuple[list[Chunk], int]:
        decisions = self.deduper.decide(doc.tenant, doc.groups, doc_id, doc.version, [c.text for c in chunks])
        kept = [c for c, d in zip(chunks, decisions, strict=True) if d.duplicate_of is None]
        return kept, len(chunks) - len(kept)

    def stage(self, doc: DocumentRef, doc_id: str, data: bytes) -> StageOutput:
        """parse -> chunk -> redact -> dedupe -> embed -> upsert in one call: points written, invisible."""
        with self.gil_gate:
            parsed = self.parse(doc, data)
            title, chunks, pii = self.redact(parsed.title, self.chunk(parsed.elements))
            # kept for re-homing duplicates if this document's copy of a paragraph is later retired
            self.d.blobs.put_json(work_key(doc.tenant, doc.version, "redacted.json"), [c.to_dict() for c in chunks])
            kept, duplicates = self.dedupe(doc, doc_id, chunks)
        vectors = self.d.embedder.embed(self.embedding_texts(title, kept))
        with self.gil_gate:
            self.d.store.upsert(self.collection, self.points(doc, doc_id, title, kept, vectors))
        version = self.d.embedder.version.key
        return StageOutput(title, len(kept), duplicates, version, pii, parsed.encoding)

    def embedding_texts(self, title: str, chunks: Sequence[Chunk]) -> list[str]:
        return [embedding_text(title, c.section_path, c.text) for c in chunks]

    def points(
        self, doc: DocumentRef, doc_id: str, title: str, chunks: Sequence[Chunk], vectors: np.ndarray
    ) -> list[ChunkPoint]:
        """Staged points: deterministic ids, invisible (visible_from = NEVER) until published."""
        version = self.d.embedder.version
        embedding = version.to_dict()
        now = time.time()
        texts = self.embedding_texts(title, chunks)
        return [
            ChunkPoint(
                id=ids.point_id(doc.tenant, doc_id, doc.version, c.index, version.key),
                dense=v.tolist(),
                sparse=self.d.sparse.document(text),
                payload={
                    "tenant": doc.tenant,
                    "access_groups": list(doc.groups),
                    "doc_id": doc_id,
                    "version": doc.version,
                    "source": doc.source,
                    "title": title,
                    "section_path": c.section_path,
                    "chunk_index": c.index,
                    "pages": c.pages,
                    "token_count": c.token_count,
                    "text": c.text,
                    "content_hash": ids.sha256_bytes(c.text.encode()),
                    "embedding_version": version.key,
                    "embedding": embedding,
                    "ingested_at": now,
                    "visible_from": NEVER,
                    "visible_until": NEVER,
                },
            )
            for c, v, text in zip(chunks, vectors, texts, strict=True)
        ]

    def publish(self, doc: DocumentRef, doc_id: str, record: dict[str, Any], run_id: str = "") -> Published:
        """Make this version the visible one and retire the previous one, atomically for readers.

        Readers see points with visible_from <= G < visible_until, where G is the tenant's
        generation. Under a per-tenant lock: new points get visible_from = G+1, older versions
        get visible_until = G+1, then G becomes G+1 in one Redis transaction with the document
        record. Before the bump readers see only the old version; after it, only the new one.
        A retry after a crash at any point redoes the same writes or finds the work done; work
        done by the same workflow run (`run_id`) is reported as this publish's, not a repeat's.
        """
        r = self.d.redis
        key = doc_key(doc.tenant, doc_id)
        with r.lock(publish_lock_key(doc.tenant), timeout=120, blocking_timeout=120):
            current, published_run, published_gen = r.hmget(key, ["version", "published_run", "generation"])
            gen = int(r.get(generation_key(doc.tenant)) or 0)
            if current is not None and _s(current) == doc.version:
                if run_id and published_run is not None and _s(published_run) == run_id:
                    return Published(int(published_gen or gen))
                return Published(gen, already_published=True)
            nxt = gen + 1
            if current is not None:
                self._rehome_holders(doc, doc_id, _s(current), nxt)
            mine = Where(must=(Cond("tenant", value=doc.tenant), Cond("doc_id", value=doc_id)))
            this_version = mine.and_(Cond("version", value=doc.version))
            self.d.store.set_payload(self.collection, this_version, {"visible_from": nxt})
            older = Where(
                must=(*mine.must, Cond("visible_until", gt=nxt)), must_not=(Cond("version", value=doc.version),)
            )
            self.d.store.set_payload(self.collection, older, {"visible_until": nxt, "retired_at": time.time()})
            fields = {k: json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else v for k, v in record.items()}
            fields.update(
                version=doc.version,
                staging="",
                source=doc.source,
                published_at=time.time(),
                generation=nxt,
                published_run=run_id,
            )
            pipe = r.pipeline(transaction=True)
            pipe.set(generation_key(doc.tenant), nxt)
            pipe.hset(key, mapping=fields)  # type: ignore[arg-type]  # redis' Mapping is invariant
            pipe.sadd(tenant_docs_key(doc.tenant), doc_id)
            pipe.execute()
        self.collect_retired(doc.tenant)
        return Published(nxt)

    def _rehome_holders(self, doc: DocumentRef, doc_id: str, old: str, generation: int) -> None:
        """Documents that skipped a paragraph because the retiring version stored it get it back.

        If the new version still has the paragraph, it simply becomes their owner. Otherwise the
        holder's own chunk is embedded and stored now, visible from the same generation at which
        the old version disappears, so readers never lose the text.
        """
        r = self.d.redis
        for holder in self.deduper.orphans(doc.tenant, doc.groups, doc_id, old, doc.version):
            chunks = self.d.blobs.get_json(work_key(doc.tenant, holder.version, "redacted.json"))
            chunk = next(Chunk.from_dict(c) for c in chunks if c["index"] == holder.chunk)
            successor = self.deduper.successor(doc.tenant, doc.groups, chunk.text)
            if successor is not None and (successor.doc_id, successor.version) == (doc_id, doc.version):
                self.deduper.hand_on(doc.tenant, doc.groups, successor, holder)
                continue
            record = {_s(k): _s(v) for k, v in r.hgetall(doc_key(doc.tenant, holder.doc_id)).items()}
            ref = DocumentRef(
                doc.tenant, json.loads(record.get("groups", "[]")), record["source"], "", holder.version, "", 0
            )
            title = record.get("title", "")
            vectors = self.d.embedder.embed(self.embedding_texts(title, [chunk]))
            points = self.points(ref, holder.doc_id, title, [chunk], vectors)
            for p in points:
                p.payload["visible_from"] = generation
            self.d.store.upsert(self.collection, points)
            self.deduper.adopt(doc.tenant, doc.groups, holder, chunk.text)
            pipe = r.pipeline()
            pipe.hincrby(doc_key(doc.tenant, holder.doc_id), "chunks", 1)
            pipe.hincrby(doc_key(doc.tenant, holder.doc_id), "duplicates", -1)
            pipe.execute()

    def collect_retired(self, tenant: str) -> None:
        """Delete versions retired longer ago than any in-flight read can still be using them."""
        cutoff = time.time() - self.d.settings.retire_grace_seconds
        self.d.store.delete(self.collection, Where(must=(Cond("tenant", value=tenant), Cond("retired_at", lt=cutoff))))


def staged_record(doc: DocumentRef, staged: StageOutput) -> dict[str, Any]:
    return document_record(
        doc, staged.title, staged.chunks, staged.duplicates, staged.pii, staged.embedding_version, staged.encoding
    )


def document_record(
    doc: DocumentRef,
    title: str,
    chunks: int,
    duplicates: int,
    pii: dict[str, int],
    embedding_version: str,
    encoding: str | None,
) -> dict[str, Any]:
    """What the published document record says about this version (Redis hash `keel:doc:...`)."""
    return {
        "title": title,
        "chunks": chunks,
        "duplicates": duplicates,
        "pii": pii,
        "embedding_version": embedding_version,
        "encoding": encoding or "",
        "groups": list(doc.groups),
    }


def published_output(doc_id: str, version: str, record: dict[str, str]) -> IngestDocumentOutput:
    """The outcome a published document record describes (the record's fields as strings)."""
    return IngestDocumentOutput(
        doc_id,
        version,
        "ingested",
        chunks=int(record.get("chunks") or 0),
        duplicates=int(record.get("duplicates") or 0),
        pii=json.loads(record.get("pii") or "{}"),
        generation=int(record.get("generation") or 0),
    )


def ingest_plain(steps: Steps, doc: DocumentRef, data: bytes) -> int:
    """One document through every step in-process: the no-orchestration baseline. Returns chunks stored."""
    begun = steps.begin(doc)
    if begun.unchanged:
        return 0
    staged = steps.stage(doc, begun.doc_id, data)
    steps.publish(doc, begun.doc_id, staged_record(doc, staged))
    return staged.chunks


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
