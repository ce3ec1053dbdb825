"""The ingestion activities: one method per arrow of IngestDocumentWorkflow.

Each reads its input from the blob store, runs the shared step (`pipelines.ingest.IngestSteps`) and
writes its output under keys derived from (tenant, version), so a retried step rewrites the same
keys and a retried upsert rewrites the same point ids. Long steps heartbeat their progress.
"""

from __future__ import annotations

import functools
import io
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, cast

import numpy as np
from temporalio import activity

from activities.errors import mapped
from activities.heartbeat import keep_alive, progress, resume_from
from contracts.batch import FileOutcome
from contracts.ingest import (
    BeginGroupOutput,
    BeginInput,
    BeginOutput,
    ChunkInput,
    ChunkOutput,
    DedupeInput,
    DedupeOutput,
    DiscardInput,
    DiscardOutput,
    EmbedInput,
    EmbedOutput,
    GroupInput,
    IngestGroupInput,
    ParseInput,
    ParseOutput,
    PublishGroupInput,
    PublishInput,
    PublishOutput,
    RedactInput,
    RedactOutput,
    StageGroupOutput,
    StageInput,
    StageOutput,
    UpsertInput,
    UpsertOutput,
)
from index.catalog import document_record
from ingestion.chunk import Chunk
from ingestion.parse import Element
from pipelines.deps import Deps
from pipelines.ingest import IngestSteps
from pipelines.ingest_group import GroupRun, GroupSteps
from stores.blobs import work_key

__all__ = ["IngestActivities"]


class StepGate:
    """At most `slots` threads run GIL-bound steps at once (Settings.gil_step_slots). A thread
    already inside passes again freely: a gated step may call one that gates its own part (a
    publish re-homing a duplicate writes points, which the staging path gates alone)."""

    def __init__(self, slots: int) -> None:
        self._slots = threading.BoundedSemaphore(max(1, slots))
        self._depth = threading.local()

    def __enter__(self) -> None:
        depth = getattr(self._depth, "n", 0)
        if depth == 0:
            self._slots.acquire()
        self._depth.n = depth + 1

    def __exit__(self, *exc: object) -> None:
        self._depth.n -= 1
        if self._depth.n == 0:
            self._slots.release()


def gil_bound(fn: F) -> F:
    """Run under the worker's GIL-step gate (see Settings.gil_step_slots)."""

    @functools.wraps(fn)
    def wrapper(self: IngestActivities, *args: Any, **kwargs: Any) -> Any:
        with self._gil_steps:
            return fn(self, *args, **kwargs)

    return cast(F, wrapper)


F = TypeVar("F", bound=Callable[..., Any])

EMBED_BATCH = 32
UPSERT_BATCH = 128


class IngestActivities:
    def __init__(self, deps: Deps) -> None:
        self.d = deps
        self._gil_steps = StepGate(deps.settings.gil_step_slots)
        self.steps = IngestSteps(deps, gil_gate=self._gil_steps)
        self.group = GroupSteps(self.steps, self.d.blobs.get)

    @activity.defn(name="ingest.begin")
    @mapped
    def begin(self, inp: BeginInput) -> BeginOutput:
        return self.steps.begin(inp.doc, activity.info().workflow_run_id or "", inp.adopt_runs)

    @activity.defn(name="ingest.stage")
    @mapped
    def stage(self, inp: StageInput) -> StageOutput:
        """A small document's parse -> ... -> upsert in one local activity (see workflows.policies)."""
        return self.steps.stage(inp.doc, inp.doc_id, self.d.blobs.get(inp.doc.blob_key))

    @activity.defn(name="ingest.parse")
    @mapped
    def parse(self, inp: ParseInput) -> ParseOutput:
        data = self.d.blobs.get(inp.doc.blob_key)
        with keep_alive():  # one long library call: heartbeat on a timer
            parsed = self.steps.parse(inp.doc, data)
        key = work_key(inp.doc.tenant, inp.doc.version, "elements.json")
        self.d.blobs.put_json(key, [e.to_dict() for e in parsed.elements])
        return ParseOutput(
            elements_key=key, elements=len(parsed.elements), title=parsed.title, encoding=parsed.encoding
        )

    @activity.defn(name="ingest.chunk")
    @mapped
    def chunk(self, inp: ChunkInput) -> ChunkOutput:
        elements = [Element.from_dict(e) for e in self.d.blobs.get_json(inp.elements_key)]
        chunks = self.steps.chunk(inp.doc, elements)
        key = work_key(inp.doc.tenant, inp.doc.version, "chunks.json")
        self._save_chunks(key, chunks)
        return ChunkOutput(chunks_key=key, chunks=len(chunks), tokens=sum(c.token_count for c in chunks))

    @activity.defn(name="ingest.redact")
    @mapped
    def redact(self, inp: RedactInput) -> RedactOutput:
        with keep_alive():
            title, chunks, pii = self.steps.redact(inp.doc, inp.title, self._chunks(inp.chunks_key))
        key = work_key(inp.doc.tenant, inp.doc.version, "redacted.json")
        self._save_chunks(key, chunks)
        return RedactOutput(chunks_key=key, title=title, pii=pii)

    @activity.defn(name="ingest.dedupe")
    @mapped
    @gil_bound
    def dedupe(self, inp: DedupeInput) -> DedupeOutput:
        kept, duplicates = self.steps.dedupe(inp.doc, inp.doc_id, self._chunks(inp.chunks_key))
        key = work_key(inp.doc.tenant, inp.doc.version, "kept.json")
        self._save_chunks(key, kept)
        return DedupeOutput(chunks_key=key, kept=len(kept), duplicates=duplicates)

    @activity.defn(name="ingest.embed")
    @mapped
    def embed(self, inp: EmbedInput) -> EmbedOutput:
        """Embeds in batches, saving and heartbeating progress, so a retry resumes mid-document."""
        index = self.steps.index(inp.doc.tenant)
        texts = self.steps.embedding_texts(inp.title, self._chunks(inp.chunks_key))
        partial_key = work_key(inp.doc.tenant, inp.doc.version, "vectors.partial.npy")
        parts: list[np.ndarray] = []
        done = 0
        if resume_from(0) and self.d.blobs.exists(partial_key):
            parts = [_load_npy(self.d.blobs.get(partial_key))]
            done = len(parts[0])
        # A round of batches side by side, one per forward pass the embedder allows at once: a large
        # document alone on the worker uses every core, as the plain loop's one wide pass does.
        passes = max(1, (os.cpu_count() or 1) // max(1, self.d.settings.torch_threads))
        for start in range(done, len(texts), EMBED_BATCH * passes):
            batches = [
                texts[s : s + EMBED_BATCH]
                for s in range(start, min(len(texts), start + EMBED_BATCH * passes), EMBED_BATCH)
            ]
            parts.extend(self._embed_side_by_side(index.embedder.embed, batches))
            done = min(start + EMBED_BATCH * passes, len(texts))
            if done < len(texts):
                self.d.blobs.put(partial_key, _dump_npy(np.concatenate(parts)))
            progress(done)
        vectors = np.concatenate(parts) if parts else np.zeros((0, index.version.dim), dtype=np.float32)
        key = work_key(inp.doc.tenant, inp.doc.version, "vectors.npy")
        self.d.blobs.put(key, _dump_npy(vectors))
        self.d.blobs.delete(partial_key)
        return EmbedOutput(vectors_key=key, count=len(vectors), embedding_version=index.version.key)

    def _embed_side_by_side(
        self, embed: Callable[[list[str]], np.ndarray], batches: list[list[str]]
    ) -> list[np.ndarray]:
        if len(batches) == 1:
            return [embed(batches[0])]
        with ThreadPoolExecutor(max_workers=len(batches), thread_name_prefix="embed-round") as pool:
            return list(pool.map(embed, batches))

    @activity.defn(name="ingest.upsert")
    @mapped
    def upsert(self, inp: UpsertInput) -> UpsertOutput:
        """Writes staged (invisible) points with deterministic ids; resumes from the last batch."""
        chunks = self._chunks(inp.chunks_key)
        vectors = _load_npy(self.d.blobs.get(inp.vectors_key))
        # The index the vectors came from, even when a flip made another one active since.
        index = self.d.indexes.by_version(inp.doc.tenant, inp.embedding_version)
        for start in range(resume_from(0), len(chunks), UPSERT_BATCH):
            end = start + UPSERT_BATCH
            self.steps.store_points(inp.doc, inp.doc_id, inp.title, chunks[start:end], index, vectors[start:end])
            progress(end)
        return UpsertOutput(points=len(chunks))

    @activity.defn(name="ingest.publish")
    @mapped
    @gil_bound
    def publish(self, inp: PublishInput) -> PublishOutput:
        record = document_record(
            inp.doc,
            title=inp.title,
            chunks=inp.chunks,
            duplicates=inp.duplicates,
            pii=inp.pii,
            embedding_version=inp.embedding_version,
            encoding=inp.encoding,
        )
        published = self.steps.publish(inp.doc, inp.doc_id, record, activity.info().workflow_run_id or "")
        if not published.already_published:
            # Nothing the document went through stays readable but its redacted chunks, which
            # re-homing a duplicate needs and which the index holds anyway.
            self.steps.drop_files(inp.doc, redacted=False)
        return PublishOutput(generation=published.generation, already_published=published.already_published)

    @activity.defn(name="ingest.discard")
    @mapped
    def discard(self, inp: DiscardInput) -> DiscardOutput:
        """The document failed: nothing it went through is kept (see IngestSteps.discard)."""
        return DiscardOutput(removed=self.steps.discard(inp.doc, inp.doc_id, activity.info().workflow_run_id or ""))

    # -- a group of small documents (IngestGroupWorkflow; see pipelines.ingest_group) ------------
    @activity.defn(name="ingest.begin_group")
    @mapped
    def begin_group(self, inp: IngestGroupInput) -> BeginGroupOutput:
        members, settled = self.group.begin(inp.docs, _group_run())
        return BeginGroupOutput(members=members, settled=settled)

    @activity.defn(name="ingest.stage_group")
    @mapped
    def stage_group(self, inp: GroupInput) -> StageGroupOutput:
        staged, failed = self.group.stage(inp.members, _group_run())
        return StageGroupOutput(staged=staged, failed=failed)

    @activity.defn(name="ingest.publish_group")
    @mapped
    @gil_bound
    def publish_group(self, inp: PublishGroupInput) -> list[FileOutcome]:
        return self.group.publish(inp.staged, _group_run())

    @activity.defn(name="ingest.discard_group")
    @mapped
    def discard_group(self, inp: GroupInput) -> DiscardOutput:
        return DiscardOutput(removed=self.group.discard(inp.members, _group_run()))

    def _chunks(self, key: str) -> list[Chunk]:
        return [Chunk.from_dict(c) for c in self.d.blobs.get_json(key)]

    def _save_chunks(self, key: str, chunks: Sequence[Chunk]) -> None:
        self.d.blobs.put_json(key, [c.to_dict() for c in chunks])

    def all(self) -> Sequence[Any]:
        return [
            self.begin,
            self.stage,
            self.parse,
            self.chunk,
            self.redact,
            self.dedupe,
            self.embed,
            self.upsert,
            self.publish,
            self.discard,
            self.begin_group,
            self.stage_group,
            self.publish_group,
            self.discard_group,
        ]


def _group_run() -> GroupRun:
    info = activity.info()
    return GroupRun(workflow_id=info.workflow_id or "", run_id=info.workflow_run_id or "")


def _dump_npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a.astype(np.float32), allow_pickle=False)
    return buf.getvalue()


def _load_npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)
