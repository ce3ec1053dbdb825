"""The ingestion steps over real clients, shared by the activities and the plain loop.

`IngestActivities` wraps each step with blob-store reads and writes (so histories carry keys) and
heartbeats; `ingest_plain` chains the same steps in one process with no orchestration, which is
the baseline `make bench-ingest` compares the workflows against. The pure steps are in
`ingestion/`; the index they write to (catalog, dedupe registry, publish) is `index/`.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from contracts.ingest import PREPARE_STEPS, STORE_STEPS, BeginOutput, DocumentRef, StageOutput
from encoders.dense import embedding_text
from guardrails import injection
from guardrails.pseudonyms import Pseudonyms
from index.active import ActiveIndex
from index.catalog import Catalog, staged_record
from index.dedupe import Deduper
from index.publish import Published, Publisher
from index.visibility import NEVER
from ingestion.chunk import Chunk, ChunkConfig, chunk_elements
from ingestion.parse import Element, ParsedDocument, parse_document
from ingestion.redact import redact_chunks
from keel import ids
from keel.tenancy import EVERYONE
from pipelines.clock import StepClock
from pipelines.deps import Deps
from retrieval.links import title_key
from stores import guard_policy, term_stats
from stores.blobs import work_key
from stores.term_stats import Contribution
from vectorstore.base import BM25_LEN, ChunkPoint, Cond, Where

# Intermediate files of a document's steps: none is needed once it is published or has failed.
TRANSIENT_WORK_FILES = ("elements.json", "chunks.json", "kept.json", "vectors.npy", "vectors.partial.npy")


@dataclass(frozen=True, kw_only=True)
class Prepared:
    """A document redacted and deduplicated, waiting for the model."""

    title: str
    kept: list[Chunk]
    duplicates: int
    pii: dict[str, int]
    encoding: str | None
    texts: list[str]  # one per kept chunk: what the model embeds

    def staged(self, index: ActiveIndex) -> StageOutput:
        return StageOutput(
            title=self.title,
            chunks=len(self.kept),
            duplicates=self.duplicates,
            embedding_version=index.version.key,
            pii=self.pii,
            encoding=self.encoding,
        )


class IngestSteps:
    def __init__(self, deps: Deps, gil_gate: contextlib.AbstractContextManager[Any] | None = None) -> None:
        self.d = deps
        # Held around the pure-Python steps when documents run side by side (see
        # Settings.gil_step_slots); the embedding pass runs outside it since torch releases the GIL.
        self.gil_gate = gil_gate or contextlib.nullcontext()
        s = deps.settings
        self.catalog = Catalog(deps.redis)
        self.deduper = Deduper(deps.redis, s.dedupe_threshold)
        self.publisher = Publisher(deps.redis, deps.indexes, s)
        self.chunk_config = ChunkConfig(s.chunk_min_tokens, s.chunk_max_tokens, s.chunk_overlap_tokens)
        self.clock = StepClock()  # where the time goes (the ingest benchmark turns it on)

    def index(self, tenant: str) -> ActiveIndex:
        """The tenant's index: the encoder (and tokenizer) its chunks are sized and embedded with."""
        return self.d.indexes.active(tenant)

    def begin(self, doc: DocumentRef, run_id: str = "", adopt: Sequence[str] = ()) -> BeginOutput:
        self.d.indexes.settle(doc.tenant, lambda: self.catalog.document_count(doc.tenant))
        return self.catalog.begin(doc, run_id, adopt)

    def parse(self, doc: DocumentRef, data: bytes) -> ParsedDocument:
        if self.d.offload is not None:  # a process of its own, under the per-file limit
            return self.d.offload.parse(data, doc.filename)
        s = self.d.settings
        with self.gil_gate:
            return parse_document(data, doc.filename, s.max_file_bytes, s.decode_legacy_text, s.max_inflated_bytes)

    def chunk(self, doc: DocumentRef, elements: Sequence[Element], index: ActiveIndex | None = None) -> list[Chunk]:
        """Sized in the tokens of the tenant's embedding model (`index`, when the caller has it)."""
        embedder = (index or self.index(doc.tenant)).embedder
        with self.gil_gate:
            return chunk_elements(elements, embedder.count_tokens, self.chunk_config)

    def redact(self, doc: DocumentRef, title: str, chunks: list[Chunk]) -> tuple[str, list[Chunk], dict[str, int]]:
        """Chunk text, section titles and the document title (`ingestion.redact.redact_chunks`);
        with pseudonyms on, the originals of the document's tokens go to the tenant's vault."""
        vault = self.d.vault
        pseudonyms = None
        if vault is not None:  # the tenant's choice per entity type: pseudonymise, redact or keep
            policy = guard_policy.read(self.d.redis, doc.tenant, guard_policy.defaults(self.d.settings))
            actions = policy.pii_actions()
            pseudonyms = Pseudonyms(vault.secret(doc.tenant), actions)
        if self.d.offload is not None:
            done = self.d.offload.redact(title, chunks, pseudonyms)
        else:
            with self.gil_gate:
                done = redact_chunks(self.d.redactor, title, chunks, pseudonyms)
        if vault is not None and done.tokens:
            vault.keep(doc.tenant, ids.document_id(doc.tenant, doc.source), done.tokens)
        return done.title, done.chunks, done.counts

    def dedupe(self, doc: DocumentRef, doc_id: str, chunks: list[Chunk]) -> tuple[list[Chunk], int]:
        decisions = self.deduper.decide(doc.tenant, doc.groups, doc_id, doc.version, [c.text for c in chunks])
        kept = [c for c, d in zip(chunks, decisions, strict=True) if d.duplicate_of is None]
        return kept, len(chunks) - len(kept)

    def stage(self, doc: DocumentRef, doc_id: str, data: bytes) -> StageOutput:
        """parse -> chunk -> redact -> dedupe -> embed -> upsert in one call: points written, invisible."""
        index = self.index(doc.tenant)
        prepared = self.prepare(doc, doc_id, data, index)
        embed, _ = STORE_STEPS
        self.clock.texts(prepared.texts)
        with self.clock(embed):
            vectors = index.embedder.embed(prepared.texts)
        self.store_points(doc, doc_id, prepared.title, prepared.kept, index, vectors)
        return prepared.staged(index)

    def prepare(self, doc: DocumentRef, doc_id: str, data: bytes, index: ActiveIndex | None = None) -> Prepared:
        """Every step before the model: parse -> chunk -> redact -> dedupe, and the texts to embed,
        sized for `index` (the tenant's active one, looked up here when not given)."""
        clock = self.clock
        parse, chunk, redact, dedupe = PREPARE_STEPS  # the order, from contracts.ingest
        with clock(parse):
            parsed = self.parse(doc, data)
        with clock(chunk):
            chunked = self.chunk(doc, parsed.elements, index)
        with clock(redact):
            title, chunks, pii = self.redact(doc, parsed.title, chunked)
        with self.gil_gate:
            # kept for re-homing duplicates if this document's copy of a paragraph is later retired
            with clock("work files"):
                self.d.blobs.put_json(work_key(doc.tenant, doc.version, "redacted.json"), [c.to_dict() for c in chunks])
            with clock(dedupe):
                kept, duplicates = self.dedupe(doc, doc_id, chunks)
        return Prepared(
            title=title,
            kept=kept,
            duplicates=duplicates,
            pii=pii,
            encoding=parsed.encoding,
            texts=self.embedding_texts(title, kept),
        )

    def discard(self, doc: DocumentRef, doc_id: str, run_id: str = "", *, keep_raw: bool = False) -> int:
        """An ingest of this version failed: remove what it left. Its staged points (never made
        visible), its work files (the unredacted chunks among them; the redacted ones too unless
        another document with the same bytes still needs them), its raw bytes unless
        `keep_raw_uploads` (a retry stages the file again), its claim on the record, and then
        `run_id`'s claim on the bytes. `keep_raw`: the raw bytes stay for a run that tries the
        document again now. Returns how many points and files went."""
        try:
            return self._discard(doc, doc_id, keep_raw)
        finally:
            self.catalog.release(doc.tenant, doc.version, run_id)

    def _discard(self, doc: DocumentRef, doc_id: str, keep_raw: bool) -> int:
        if self.catalog.published_version(doc.tenant, doc_id) == doc.version:
            return 0  # it failed after its publish went through (a crash): nothing is left over
        staged = Where(
            must=(
                Cond("tenant", value=doc.tenant),
                Cond("doc_id", value=doc_id),
                Cond("version", value=doc.version),
                Cond("visible_from", gte=NEVER),
            )
        )
        targets = self.d.indexes.targets(doc.tenant)
        removed = self.d.store.count(targets[0].collection, staged)  # counted once, in the active index
        for index in targets:
            self.d.store.delete(index.collection, staged)
        shared = doc.version in self.catalog.versions_in_use(doc.tenant, but=doc_id)
        removed += self.drop_files(doc, redacted=not shared, keep_raw=keep_raw)
        self.catalog.abandon(doc.tenant, doc_id, doc.version)
        return removed

    def drop_files(self, doc: DocumentRef, *, redacted: bool, keep_raw: bool = False) -> int:
        """Delete the document's work files (the unredacted chunks among them), its redacted chunks
        too when `redacted`, and its raw bytes unless `keep_raw_uploads`. Returns the files gone."""
        names = [*TRANSIENT_WORK_FILES, "redacted.json"] if redacted else list(TRANSIENT_WORK_FILES)
        removed = sum(self.d.blobs.delete(work_key(doc.tenant, doc.version, n)) for n in names)
        if not (keep_raw or self.d.settings.keep_raw_uploads) and doc.blob_key:
            removed += self.d.blobs.delete(doc.blob_key)
        return removed

    def embedding_texts(self, title: str, chunks: Sequence[Chunk]) -> list[str]:
        return [embedding_text(title, c.section_path, c.text) for c in chunks]

    def store_points(
        self,
        doc: DocumentRef,
        doc_id: str,
        title: str,
        chunks: Sequence[Chunk],
        embedded_by: ActiveIndex,
        vectors: np.ndarray,
        visible_from: int | None = None,
    ) -> list[ChunkPoint]:
        """Write the chunks' points to every index the tenant's writes reach (`Indexes.targets`):
        with `vectors` where `embedded_by` is the index, embedded again by each other one's encoder.

        Then look again, until nothing is new: a migration that began after the first look has
        its backfill under way, which may already have passed these points, so it gets them here.
        Returns the points written to `embedded_by` (what they add to BM25 is the same in each)."""
        written: dict[str, list[ChunkPoint]] = {}
        while pending := [i for i in self.d.indexes.targets(doc.tenant) if i.name not in written]:
            for index in pending:
                same = index.name == embedded_by.name
                vecs = vectors if same else index.embedder.embed(self.embedding_texts(title, chunks))
                with self.clock("points (bm25, guard)"):
                    points = self.points(doc, doc_id, title, chunks, vecs, index)
                if visible_from is not None:
                    for p in points:
                        p.payload["visible_from"] = visible_from
                with self.gil_gate, self.clock("upsert"):
                    self.d.store.upsert(index.collection, points)
                written[index.name] = points
        if embedded_by.name in written:
            return written[embedded_by.name]
        return self.points(doc, doc_id, title, chunks, vectors, embedded_by)

    def points(
        self,
        doc: DocumentRef,
        doc_id: str,
        title: str,
        chunks: Sequence[Chunk],
        vectors: np.ndarray,
        index: ActiveIndex,
    ) -> list[ChunkPoint]:
        """Staged points of one index: deterministic ids, invisible (visible_from = NEVER) until published."""
        version = index.version
        embedding = version.to_dict()
        now = time.time()
        texts = self.embedding_texts(title, chunks)
        terms = [self.d.sparse.terms(t) for t in texts]
        # BM25's length normalisation uses the tenant's mean chunk length now (this document's
        # own before anything of the tenant is published).
        avg_len = term_stats.avg_len(self.d.redis, doc.tenant) or sum(map(len, terms)) / max(1, len(terms))
        # Indirect injection: a chunk that reads as instructions to the model is stored flagged,
        # and the tenant's policy decides at query time what a flagged chunk may be used for.
        verdicts = [injection.shipped().check(c.text) for c in chunks]
        return [
            ChunkPoint(
                id=ids.point_id(doc.tenant, doc_id, doc.version, c.index, version.key),
                dense=v.tolist(),
                sparse=self.d.sparse.document(t, avg_len),
                payload={
                    "tenant": doc.tenant,
                    "access_groups": list(doc.groups),
                    "doc_id": doc_id,
                    "version": doc.version,
                    "source": doc.source,
                    "title": title,
                    "title_key": title_key(title),
                    "section_path": c.section_path,
                    "chunk_index": c.index,
                    "pages": c.pages,
                    "token_count": c.token_count,
                    BM25_LEN: len(t),
                    "text": c.text,
                    "content_hash": ids.sha256_bytes(c.text.encode()),
                    "embedding_version": version.key,
                    "embedding": embedding,
                    "ingested_at": now,
                    "injection": verdict.score,
                    "injection_flag": verdict.flagged,
                    "visible_from": NEVER,
                    "visible_until": NEVER,
                },
            )
            for c, v, t, verdict in zip(chunks, vectors, terms, verdicts, strict=True)
        ]

    def publish(self, doc: DocumentRef, doc_id: str, record: dict[str, Any], run_id: str = "") -> Published:
        """Make this version the visible one (`index.publish`), re-homing what others held of the old one."""

        def rehome(old: str, generation: int) -> Contribution:
            return self.rehome_holders(doc, doc_id, old, generation)

        published = self.publisher.publish(doc, doc_id, record, run_id, before_flip=rehome)
        self.catalog.release(doc.tenant, doc.version, run_id)
        return published

    def rehome_holders(self, doc: DocumentRef, doc_id: str, old: str, generation: int) -> Contribution:
        """Documents that skipped a paragraph because the retiring version stored it get it back.

        If the new version (`doc.version`; "" for a deletion) still has the paragraph, it simply
        becomes their owner. Otherwise the holder's own chunk is embedded and stored now, visible
        from the same generation at which the old version disappears, so readers never lose the
        text. Returns what the chunks stored again add to the BM25 statistics (`chunks`: how many).
        """
        index = self.index(doc.tenant)
        orphans = self.deduper.orphans(doc.tenant, doc.groups, doc_id, old, doc.version)
        stored: list[tuple[list[int], int]] = []
        for holder in orphans:
            chunks = self.d.blobs.get_json(work_key(doc.tenant, holder.version, "redacted.json"))
            chunk = next(Chunk.from_dict(c) for c in chunks if c["index"] == holder.chunk)
            successor = self.deduper.successor(doc.tenant, doc.groups, chunk.text)
            if successor is not None and (successor.doc_id, successor.version) == (doc_id, doc.version):
                self.deduper.hand_on(doc.tenant, doc.groups, successor, holder)
                continue
            record = self.catalog.record(doc.tenant, holder.doc_id)
            ref = DocumentRef(
                tenant=doc.tenant,
                groups=json.loads(record.get("groups", "[]")),
                source=record["source"],
                filename="",
                version=holder.version,
                blob_key="",
                size=0,
            )
            title = record.get("title", "")
            vectors = index.embedder.embed(self.embedding_texts(title, [chunk]))
            points = self.store_points(ref, holder.doc_id, title, [chunk], index, vectors, visible_from=generation)
            stored += [(p.sparse.indices, int(p.payload[BM25_LEN])) for p in points]
            self.deduper.adopt(doc.tenant, doc.groups, holder, chunk.text)
            self.catalog.adopted_duplicate(doc.tenant, holder.doc_id)
        return Contribution.of(stored)


def local_document(tenant: str, path: Path, data: bytes, groups: Sequence[str] = (EVERYONE,)) -> DocumentRef:
    """A file on this machine as the plain loop ingests it (no blob store: the bytes are at hand)."""
    return DocumentRef(
        tenant=tenant,
        groups=list(groups),
        source=str(path),
        filename=path.name,
        version=ids.sha256_bytes(data),
        blob_key="",
        size=len(data),
    )


def ingest_plain(steps: IngestSteps, doc: DocumentRef, data: bytes) -> int:
    """One document through every step in-process: the no-orchestration baseline. Returns chunks stored."""
    with steps.clock("begin"):
        begun = steps.begin(doc)
    if begun.unchanged:
        return 0
    staged = steps.stage(doc, begun.doc_id, data)
    with steps.clock("publish"):
        steps.publish(doc, begun.doc_id, staged_record(doc, staged))
    return staged.chunks
