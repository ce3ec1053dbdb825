"""IngestDocumentWorkflow: one document, parse -> chunk -> redact -> dedupe -> embed -> upsert -> publish.

Small documents run the steps as local activities, large ones as regular heartbeated activities
(see `workflows.policies.runner_for`); the pipeline is the same either way.

Its id is the business key `ingest/<tenant>/<sha256 of the bytes>`, so the same bytes are never
ingested twice at once, and `begin` turns a repeat of the published version into a no-op.
"""

from __future__ import annotations

from temporalio import workflow

from workflows import policies
from workflows.policies import local_step

with workflow.unsafe.imports_passed_through():
    from activities.ingest import IngestActivities
    from keel.contracts import (
        BeginInput,
        ChunkInput,
        DedupeInput,
        EmbedInput,
        IngestDocumentInput,
        IngestDocumentOutput,
        ParseInput,
        PublishInput,
        RedactInput,
        UpsertInput,
    )


@workflow.defn(name="IngestDocument")
class IngestDocumentWorkflow:
    @workflow.run
    async def run(self, inp: IngestDocumentInput) -> IngestDocumentOutput:
        doc = inp.doc
        begin = await local_step(IngestActivities.begin, BeginInput(doc), policies.BEGIN)
        if begin.unchanged:
            return IngestDocumentOutput(begin.doc_id, doc.version, "unchanged")

        run = policies.runner_for(doc.size)
        parsed = await run(IngestActivities.parse, ParseInput(doc), policies.PARSE)
        chunked = await run(IngestActivities.chunk, ChunkInput(doc, parsed.elements_key), policies.CHUNK)
        redacted = await run(
            IngestActivities.redact, RedactInput(doc, chunked.chunks_key, parsed.title), policies.REDACT
        )
        deduped = await run(
            IngestActivities.dedupe, DedupeInput(doc, begin.doc_id, redacted.chunks_key), policies.DEDUPE
        )
        embedded = await run(
            IngestActivities.embed, EmbedInput(doc, deduped.chunks_key, redacted.title), policies.EMBED
        )
        await run(
            IngestActivities.upsert,
            UpsertInput(doc, begin.doc_id, deduped.chunks_key, embedded.vectors_key, redacted.title),
            policies.UPSERT,
        )
        published = await run(
            IngestActivities.publish,
            PublishInput(
                doc,
                begin.doc_id,
                redacted.title,
                chunks=deduped.kept,
                duplicates=deduped.duplicates,
                embedding_version=embedded.embedding_version,
                pii=redacted.pii,
                encoding=parsed.encoding,
            ),
            policies.PUBLISH,
        )
        status = "unchanged" if published.already_published else "ingested"
        return IngestDocumentOutput(
            begin.doc_id,
            doc.version,
            status,
            deduped.kept,
            deduped.duplicates,
            redacted.pii,
            published.generation,
        )
