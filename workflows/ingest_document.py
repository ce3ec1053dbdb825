"""IngestDocumentWorkflow: one document, parse -> chunk -> redact -> dedupe -> embed -> upsert -> publish.

A small document stages its points (parse through upsert) in one local activity; a large one runs
each step as its own regular, heartbeated activity so a long step survives a worker loss and
resumes from its last progress (see `workflows.policies`). Either way the points are written
invisible, and `publish` makes the version visible and retires the previous one.

If a step fails for good, `discard` removes what the run left (staged points, work files with the
unredacted chunks, raw bytes) before the failure is reported: nothing outlives its workflow.

Its id is the business key `ingest/<tenant>/<sha256 of the bytes>`, so the same bytes are never
ingested twice at once, and `begin` turns a repeat of the published version into a no-op.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from temporalio import workflow

from workflows import policies
from workflows.policies import STEP_FAILED, Runner, local_step

with workflow.unsafe.imports_passed_through():
    from activities.ingest import IngestActivities
    from contracts.ingest import (
        PREPARE_STEPS,
        STORE_STEPS,
        BeginInput,
        ChunkInput,
        DedupeInput,
        DiscardInput,
        DocumentRef,
        EmbedInput,
        IngestDocumentInput,
        IngestDocumentOutput,
        ParseInput,
        PublishInput,
        RedactInput,
        StageInput,
        StageOutput,
        UpsertInput,
    )

# Deprecated patches (docs/concepts/durability-and-replay.md): the old paths are gone; the calls
# stay one more release so histories recorded with their markers keep replaying.
ONE_STAGE_FOR_SMALL_DOCUMENTS = "one-stage-for-small-documents"
DISCARD_ON_FAILURE = "discard-on-failure"


@workflow.defn(name="IngestDocument")
class IngestDocumentWorkflow:
    @workflow.run
    async def run(self, inp: IngestDocumentInput) -> IngestDocumentOutput:
        doc = inp.doc
        begin = await local_step(IngestActivities.begin, BeginInput(doc=doc, adopt_runs=inp.adopt_runs), policies.BEGIN)
        if begin.unchanged:  # published before, by another run or (before a crash) by this one
            return begin.published_here or IngestDocumentOutput(
                doc_id=begin.doc_id, version=doc.version, status="unchanged"
            )

        try:
            return await self.stage_and_publish(doc, begin.doc_id)
        except STEP_FAILED:
            workflow.deprecate_patch(DISCARD_ON_FAILURE)
            await local_step(IngestActivities.discard, DiscardInput(doc=doc, doc_id=begin.doc_id), policies.DISCARD)
            raise

    async def stage_and_publish(self, doc: DocumentRef, doc_id: str) -> IngestDocumentOutput:
        run = policies.runner_for(doc.size)
        workflow.deprecate_patch(ONE_STAGE_FOR_SMALL_DOCUMENTS)
        if policies.is_small(doc.size):
            staged = await local_step(IngestActivities.stage, StageInput(doc=doc, doc_id=doc_id), policies.STAGE)
        else:
            staged = await self.stage_step_by_step(doc, doc_id, run)

        published = await run(
            IngestActivities.publish,
            PublishInput(
                doc=doc,
                doc_id=doc_id,
                title=staged.title,
                chunks=staged.chunks,
                duplicates=staged.duplicates,
                embedding_version=staged.embedding_version,
                pii=staged.pii,
                encoding=staged.encoding,
            ),
            policies.PUBLISH,
        )
        status = "unchanged" if published.already_published else "ingested"
        return IngestDocumentOutput(
            doc_id=doc_id,
            version=doc.version,
            status=status,
            chunks=staged.chunks,
            duplicates=staged.duplicates,
            pii=staged.pii,
            generation=published.generation,
        )

    async def stage_step_by_step(self, doc: DocumentRef, doc_id: str, run: Runner) -> StageOutput:
        """Each step of the pipeline's order (`contracts.ingest`) as an activity of its own, each
        reading what the ones before it left in the blob store."""
        staging = _Staging(doc=doc, doc_id=doc_id)
        for step in (*PREPARE_STEPS, *STORE_STEPS):
            activity, make_input, policy = _STEP_BY_STEP[step]
            staging.outputs[step] = await run(activity, make_input(staging), policy)
        return staging.staged()


@dataclass
class _Staging:
    """A large document's steps so far: each step's input is made from the outputs before it."""

    doc: DocumentRef
    doc_id: str
    outputs: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, step: str) -> Any:
        return self.outputs[step]

    def staged(self) -> StageOutput:
        return StageOutput(
            title=self["redact"].title,
            chunks=self["dedupe"].kept,
            duplicates=self["dedupe"].duplicates,
            embedding_version=self["embed"].embedding_version,
            pii=self["redact"].pii,
            encoding=self["parse"].encoding,
        )


# What each step runs and how its input is made; the order is contracts.ingest's.
_STEP_BY_STEP: dict[str, tuple[Any, Callable[[_Staging], Any], policies.StepPolicy]] = {
    "parse": (IngestActivities.parse, lambda s: ParseInput(doc=s.doc), policies.PARSE),
    "chunk": (
        IngestActivities.chunk,
        lambda s: ChunkInput(doc=s.doc, elements_key=s["parse"].elements_key),
        policies.CHUNK,
    ),
    "redact": (
        IngestActivities.redact,
        lambda s: RedactInput(doc=s.doc, chunks_key=s["chunk"].chunks_key, title=s["parse"].title),
        policies.REDACT,
    ),
    "dedupe": (
        IngestActivities.dedupe,
        lambda s: DedupeInput(doc=s.doc, doc_id=s.doc_id, chunks_key=s["redact"].chunks_key),
        policies.DEDUPE,
    ),
    "embed": (
        IngestActivities.embed,
        lambda s: EmbedInput(doc=s.doc, chunks_key=s["dedupe"].chunks_key, title=s["redact"].title),
        policies.EMBED,
    ),
    "upsert": (
        IngestActivities.upsert,
        lambda s: UpsertInput(
            doc=s.doc,
            doc_id=s.doc_id,
            chunks_key=s["dedupe"].chunks_key,
            vectors_key=s["embed"].vectors_key,
            title=s["redact"].title,
            embedding_version=s["embed"].embedding_version,
        ),
        policies.UPSERT,
    ),
}
