"""The ingestion activities: one method per arrow of IngestDocumentWorkflow.

Models and connections are built once, at worker start, and handed in. Every step reads its
input from and writes its output to the blob store under keys derived from (tenant, version), so a
retried step rewrites the same keys and a retried upsert rewrites the same point ids.
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import redis
from temporalio import activity

from activities.errors import mapped
from activities.heartbeat import keep_alive, resume_from
from ingestion.chunk import Chunk, ChunkConfig, chunk_elements
from ingestion.dedupe import Deduper
from ingestion.embed import Embedder, embedding_text
from ingestion.parse import Element, parse_document
from ingestion.redact import Redactor, merge_counts
from ingestion.sparse import SparseEncoder
from keel import ids
from keel.blobstore import BlobStore, work_key
from keel.config import Settings
from keel.contracts import (
    BeginInput,
    BeginOutput,
    ChunkInput,
    ChunkOutput,
    DedupeInput,
    DedupeOutput,
    EmbedInput,
    EmbedOutput,
    ParseInput,
    ParseOutput,
    PublishInput,
    PublishOutput,
    RedactInput,
    RedactOutput,
    UpsertInput,
    UpsertOutput,
)
from keel.redis_keys import doc_key, generation_key, publish_lock_key, tenant_docs_key
from vectorstore.base import ChunkPoint, Cond, VectorStore, Where
from vectorstore.visibility import NEVER

EMBED_BATCH = 32
UPSERT_BATCH = 128


@dataclass
class IngestDeps:
    settings: Settings
    blobs: BlobStore
    redis: redis.Redis
    store: VectorStore
    embedder: Embedder
    redactor: Redactor
    sparse: SparseEncoder


class IngestActivities:
    def __init__(self, deps: IngestDeps) -> None:
        self.d = deps
        self.deduper = Deduper(deps.redis, deps.settings.dedupe_threshold)
        self.chunk_config = ChunkConfig(
            deps.settings.chunk_min_tokens, deps.settings.chunk_max_tokens, deps.settings.chunk_overlap_tokens
        )
        deps.store.ensure_collection(deps.settings.collection, deps.embedder.version.dim)

    @property
    def collection(self) -> str:
        return self.d.settings.collection

    @activity.defn(name="ingest.begin")
    @mapped
    def begin(self, inp: BeginInput) -> BeginOutput:
        """Is this exact version already the published one? If not, mark it in flight."""
        doc = inp.doc
        doc_id = ids.document_id(doc.tenant, doc.source)
        key = doc_key(doc.tenant, doc_id)
        published = self.d.redis.hget(key, "version")
        if published is not None and _s(published) == doc.version:
            return BeginOutput(doc_id=doc_id, unchanged=True)
        self.d.redis.hset(key, mapping={"staging": doc.version, "source": doc.source})
        return BeginOutput(doc_id=doc_id, unchanged=False)

    @activity.defn(name="ingest.parse")
    @mapped
    def parse(self, inp: ParseInput) -> ParseOutput:
        data = self.d.blobs.get(inp.doc.blob_key)
        s = self.d.settings
        with keep_alive():
            parsed = parse_document(data, inp.doc.filename, s.max_file_bytes, s.decode_legacy_text)
        key = work_key(inp.doc.tenant, inp.doc.version, "elements.json")
        self.d.blobs.put_json(key, [e.to_dict() for e in parsed.elements])
        return ParseOutput(key, len(parsed.elements), parsed.title, parsed.encoding)

    @activity.defn(name="ingest.chunk")
    @mapped
    def chunk(self, inp: ChunkInput) -> ChunkOutput:
        elements = [Element.from_dict(e) for e in self.d.blobs.get_json(inp.elements_key)]
        chunks = chunk_elements(elements, self.d.embedder.count_tokens, self.chunk_config)
        key = work_key(inp.doc.tenant, inp.doc.version, "chunks.json")
        self.d.blobs.put_json(key, [c.to_dict() for c in chunks])
        return ChunkOutput(key, len(chunks), sum(c.token_count for c in chunks))

    @activity.defn(name="ingest.redact")
    @mapped
    def redact(self, inp: RedactInput) -> RedactOutput:
        chunks = self._chunks(inp.chunks_key)
        counts: list[dict[str, int]] = []
        with keep_alive():
            title = self.d.redactor.redact(inp.title)
            counts.append(title.counts)
            for c in chunks:
                body = self.d.redactor.redact(c.text)
                c.text = body.text
                counts.append(body.counts)
                redacted_path = [self.d.redactor.redact(p) for p in c.section_path]
                c.section_path = [r.text for r in redacted_path]
                counts.extend(r.counts for r in redacted_path)
        key = work_key(inp.doc.tenant, inp.doc.version, "redacted.json")
        self.d.blobs.put_json(key, [c.to_dict() for c in chunks])
        return RedactOutput(key, title.text, merge_counts(counts))

    @activity.defn(name="ingest.dedupe")
    @mapped
    def dedupe(self, inp: DedupeInput) -> DedupeOutput:
        doc = inp.doc
        chunks = self._chunks(inp.chunks_key)
        decisions = self.deduper.decide(doc.tenant, doc.groups, inp.doc_id, doc.version, [c.text for c in chunks])
        kept = [c for c, d in zip(chunks, decisions, strict=True) if d.duplicate_of is None]
        key = work_key(doc.tenant, doc.version, "kept.json")
        self.d.blobs.put_json(key, [c.to_dict() for c in kept])
        return DedupeOutput(key, len(kept), len(chunks) - len(kept))

    @activity.defn(name="ingest.embed")
    @mapped
    def embed(self, inp: EmbedInput) -> EmbedOutput:
        """Embeds in batches, saving and heartbeating progress, so a retry resumes mid-document."""
        chunks = self._chunks(inp.chunks_key)
        texts = [embedding_text(inp.title, c.section_path, c.text) for c in chunks]
        partial_key = work_key(inp.doc.tenant, inp.doc.version, "vectors.partial.npy")
        done = resume_from(0)
        parts: list[np.ndarray] = []
        if done and self.d.blobs.exists(partial_key):
            saved = _load_npy(self.d.blobs.get(partial_key))
            parts, done = [saved], len(saved)
        else:
            done = 0
        for start in range(done, len(texts), EMBED_BATCH):
            parts.append(self.d.embedder.embed(texts[start : start + EMBED_BATCH]))
            done = min(start + EMBED_BATCH, len(texts))
            if done < len(texts):
                self.d.blobs.put(partial_key, _dump_npy(np.concatenate(parts)))
            activity.heartbeat(done)
        dim = self.d.embedder.version.dim
        vectors = np.concatenate(parts) if parts else np.zeros((0, dim), dtype=np.float32)
        key = work_key(inp.doc.tenant, inp.doc.version, "vectors.npy")
        self.d.blobs.put(key, _dump_npy(vectors))
        self.d.blobs.delete(partial_key)
        return EmbedOutput(key, len(vectors), self.d.embedder.version.key)

    @activity.defn(name="ingest.upsert")
    @mapped
    def upsert(self, inp: UpsertInput) -> UpsertOutput:
        """Writes staged (invisible) points with deterministic ids; resumes from the last batch."""
        doc = inp.doc
        chunks = self._chunks(inp.chunks_key)
        vectors = _load_npy(self.d.blobs.get(inp.vectors_key))
        version = self.d.embedder.version
        now = time.time()
        points = [
            ChunkPoint(
                id=ids.point_id(doc.tenant, inp.doc_id, doc.version, c.index, version.key),
                dense=v.tolist(),
                sparse=self.d.sparse.document(embedding_text(inp.title, c.section_path, c.text)),
                payload=_payload(doc, inp.doc_id, inp.title, c, version.to_dict(), now),
            )
            for c, v in zip(chunks, vectors, strict=True)
        ]
        for start in range(resume_from(0), len(points), UPSERT_BATCH):
            self.d.store.upsert(self.collection, points[start : start + UPSERT_BATCH])
            activity.heartbeat(start + UPSERT_BATCH)
        return UpsertOutput(len(points))

    @activity.defn(name="ingest.publish")
    @mapped
    def publish(self, inp: PublishInput) -> PublishOutput:
        """Make this version the visible one and retire the previous one, atomically for readers.

        Readers see points with visible_from <= G < visible_until, where G is the tenant's
        generation. Under a per-tenant lock: new points get visible_from = G+1, older versions
        get visible_until = G+1, then G becomes G+1 in one Redis transaction with the document
        record. Before the bump readers see only the old version; after it, only the new one.
        """
        doc = inp.doc
        r = self.d.redis
        key = doc_key(doc.tenant, inp.doc_id)
        with r.lock(publish_lock_key(doc.tenant), timeout=120, blocking_timeout=120):
            current = r.hget(key, "version")
            gen = int(r.get(generation_key(doc.tenant)) or 0)
            if current is not None and _s(current) == doc.version:
                return PublishOutput(generation=gen, already_published=True)
            nxt = gen + 1
            mine = Where(must=(Cond("tenant", value=doc.tenant), Cond("doc_id", value=inp.doc_id)))
            self.d.store.set_payload(
                self.collection, mine.and_(Cond("version", value=doc.version)), {"visible_from": nxt}
            )
            older = Where(
                must=(*mine.must, Cond("visible_until", gt=nxt)),
                must_not=(Cond("version", value=doc.version),),
            )
            self.d.store.set_payload(self.collection, older, {"visible_until": nxt, "retired_at": time.time()})
            pipe = r.pipeline(transaction=True)
            pipe.set(generation_key(doc.tenant), nxt)
            pipe.hset(
                key,
                mapping={
                    "version": doc.version,
                    "staging": "",
                    "source": doc.source,
                    "title": inp.title,
                    "chunks": inp.chunks,
                    "duplicates": inp.duplicates,
                    "pii": _json(inp.pii),
                    "embedding_version": inp.embedding_version,
                    "encoding": inp.encoding or "",
                    "groups": _json(doc.groups),
                    "published_at": time.time(),
                    "generation": nxt,
                },
            )
            pipe.sadd(tenant_docs_key(doc.tenant), inp.doc_id)
            pipe.execute()
        self._collect_retired(doc.tenant)
        for name in ("elements.json", "vectors.npy"):
            self.d.blobs.delete(work_key(doc.tenant, doc.version, name))
        return PublishOutput(generation=nxt)

    def _collect_retired(self, tenant: str) -> None:
        """Delete versions retired longer ago than any in-flight read can still be using them."""
        cutoff = time.time() - self.d.settings.retire_grace_seconds
        self.d.store.delete(self.collection, Where(must=(Cond("tenant", value=tenant), Cond("retired_at", lt=cutoff))))

    def _chunks(self, key: str) -> list[Chunk]:
        return [Chunk.from_dict(c) for c in self.d.blobs.get_json(key)]

    def all(self) -> Sequence[Any]:
        return [
            self.begin,
            self.parse,
            self.chunk,
            self.redact,
            self.dedupe,
            self.embed,
            self.upsert,
            self.publish,
        ]


def _payload(doc: Any, doc_id: str, title: str, c: Chunk, embedding: dict[str, Any], now: float) -> dict[str, Any]:
    return {
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
        "embedding_version": embedding["key"],
        "embedding": embedding,
        "ingested_at": now,
        "visible_from": NEVER,
        "visible_until": NEVER,
    }


def _dump_npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a.astype(np.float32), allow_pickle=False)
    return buf.getvalue()


def _load_npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def _json(v: Any) -> str:
    import json

    return json.dumps(v, sort_keys=True)


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
