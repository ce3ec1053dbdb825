"""IngestDocumentWorkflow: one document, parse -> chunk -> redact -> dedupe -> embed -> upsert -> publish.

Its id is the business key `ingest/<tenant>/<sha256 of the bytes>`, so the same bytes are never
ingested twice at once, and `begin` turns a repeat of the published version into a no-op.
"""

from __future__ import annotations

from temporalio import workflow

from workflows import policies

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
        begin = await workflow.execute_local_activity_method(
            IngestActivities.begin, BeginInput(doc), **policies.BEGIN.local_kwargs()
        )
        if begin.unchanged:
            return IngestDocumentOutput(begin.doc_id, doc.version, "unchanged")

        parsed = await workflow.execute_activity_method(
            IngestActivities.parse, ParseInput(doc), **policies.PARSE.activity_kwargs()
        )
        chunked = await workflow.execute_activity_method(
            IngestActivities.chunk, ChunkInput(doc, parsed.elements_key), **policies.CHUNK.activity_kwargs()
        )
        redacted = await workflow.execute_activity_method(
            IngestActivities.redact,
            RedactInput(doc, chunked.chunks_key, parsed.title),
            **policies.REDACT.activity_kwargs(),
        )
        deduped = await workflow.execute_activity_method(
            IngestActivities.dedupe,
            DedupeInput(doc, begin.doc_id, redacted.chunks_key),
            **policies.DEDUPE.activity_kwargs(),
        )
        embedded = await workflow.execute_activity_method(
            IngestActivities.embed,
            EmbedInput(doc, deduped.chunks_key, redacted.title),
            **policies.EMBED.activity_kwargs(),
        )
        await workflow.execute_activity_method(
            IngestActivities.upsert,
            UpsertInput(doc, begin.doc_id, deduped.chunks_key, embedded.vectors_key, redacted.title),
            **policies.UPSERT.activity_kwargs(),
        )
        published = await workflow.execute_activity_method(
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
            **policies.PUBLISH.activity_kwargs(),
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
