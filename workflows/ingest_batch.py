"""IngestBatchWorkflow: a directory or list of files, as a sliding window of document workflows.

At most `window` documents are in flight; as each finishes the next starts. Progress is a query
the CLI polls, and per-file outcomes are flushed to Redis in small batches. After
`continue_every` documents the run drains its window and continues as new from its cursor, so a
100k-file batch keeps a small history.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import (
    ApplicationError,
    ChildWorkflowError,
    FailureError,
    WorkflowAlreadyStartedError,
)

from workflows import policies
from workflows.policies import local_step

with workflow.unsafe.imports_passed_through():
    from activities.batch import BatchActivities
    from contracts.batch import (
        BatchCounters,
        BatchProgress,
        FileOutcome,
        IngestBatchInput,
        ManifestEntry,
        ManifestPageInput,
        RecordOutcomesInput,
    )
    from contracts.ingest import DocumentRef, IngestDocumentInput
    from keel.ids import ingest_workflow_id
    from workflows.ingest_document import IngestDocumentWorkflow

FLUSH_EVERY = 50


@workflow.defn(name="IngestBatch")
class IngestBatchWorkflow:
    def __init__(self) -> None:
        self._job_id = ""
        self._status = "running"
        self._counters = BatchCounters()
        self._pending: set[asyncio.Task[None]] = set()
        self._outcomes: list[FileOutcome] = []

    @workflow.query(name="progress")
    def progress(self) -> BatchProgress:
        return BatchProgress(
            job_id=self._job_id, status=self._status, counters=self._counters, in_flight=len(self._pending)
        )

    @workflow.run
    async def run(self, inp: IngestBatchInput) -> BatchCounters:
        self._job_id = inp.job_id
        self._counters = inp.counters
        self._counters.total = inp.total
        started = 0
        page, index = inp.next_page, inp.next_index
        while page < inp.pages:
            entries = (
                await local_step(
                    BatchActivities.manifest_page,
                    ManifestPageInput(job_id=inp.job_id, page=page),
                    policies.MANIFEST_PAGE,
                )
            ).entries
            while index < len(entries) and started < inp.continue_every:
                entry = entries[index]
                index += 1
                if entry.error_code:
                    self._finish(
                        FileOutcome(
                            source=entry.source, status="failed", code=entry.error_code, message=entry.error_message
                        )
                    )
                    continue
                while len(self._pending) >= inp.window:
                    await self._wait_one()
                self._pending.add(asyncio.create_task(self._ingest(inp, entry)))
                started += 1
                if len(self._outcomes) >= FLUSH_EVERY:
                    await self._flush()
            if index >= len(entries):
                page, index = page + 1, 0
            if started >= inp.continue_every and page < inp.pages:
                await self._drain()
                workflow.continue_as_new(
                    IngestBatchInput(
                        job_id=inp.job_id,
                        tenant=inp.tenant,
                        groups=inp.groups,
                        pages=inp.pages,
                        total=inp.total,
                        next_page=page,
                        next_index=index,
                        counters=self._counters,
                        window=inp.window,
                        continue_every=inp.continue_every,
                        writer_groups=inp.writer_groups,
                    )
                )
        await self._drain()
        self._status = "completed"
        await self._flush()
        return self._counters

    async def _ingest(self, inp: IngestBatchInput, entry: ManifestEntry) -> None:
        assert entry.version is not None and entry.blob_key is not None
        doc = DocumentRef(
            tenant=inp.tenant,
            groups=inp.groups,
            source=entry.source,
            filename=entry.filename,
            version=entry.version,
            blob_key=entry.blob_key,
            size=entry.size,
            writer_groups=inp.writer_groups,
        )
        wf_id = ingest_workflow_id(inp.tenant, entry.version)
        try:
            out = await workflow.execute_child_workflow(
                IngestDocumentWorkflow.run,
                IngestDocumentInput(doc=doc),
                id=wf_id,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            )
        except WorkflowAlreadyStartedError:  # the same bytes are being ingested right now by another job
            self._finish(
                FileOutcome(
                    source=entry.source, status="unchanged", version=entry.version, message="already being ingested"
                )
            )
            return
        except ChildWorkflowError as err:
            code, message = _reason(err)
            self._finish(
                FileOutcome(
                    source=entry.source,
                    status="failed",
                    version=entry.version,
                    code=code,
                    message=message,
                    workflow_id=err.workflow_id,
                    run_id=err.run_id,
                )
            )
            return
        self._finish(
            FileOutcome(
                source=entry.source,
                status=out.status,
                doc_id=out.doc_id,
                version=out.version,
                chunks=out.chunks,
                duplicates=out.duplicates,
                workflow_id=wf_id,
            )
        )

    def _finish(self, outcome: FileOutcome) -> None:
        c = self._counters
        c.done += 1
        if outcome.status == "ingested":
            c.ingested += 1
        elif outcome.status == "unchanged":
            c.unchanged += 1
        else:
            c.failed += 1
        c.chunks += outcome.chunks
        c.duplicates += outcome.duplicates
        self._outcomes.append(outcome)

    async def _wait_one(self) -> None:
        done, pending = await workflow.wait(self._pending, return_when=asyncio.FIRST_COMPLETED)
        self._pending = set(pending)
        for task in done:
            task.result()  # surface bugs in _ingest itself

    async def _drain(self) -> None:
        while self._pending:
            await self._wait_one()
        await self._flush()

    async def _flush(self) -> None:
        outcomes, self._outcomes = self._outcomes, []
        await local_step(
            BatchActivities.record_outcomes,
            RecordOutcomesInput(job_id=self._job_id, outcomes=outcomes, counters=self._counters, status=self._status),
            policies.RECORD_OUTCOMES,
        )


def _reason(err: FailureError) -> tuple[str, str]:
    """The innermost application error: its type is Keel's error code."""
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, ApplicationError):
            return cause.type or "error", cause.message
        cause = cause.__cause__ or getattr(cause, "cause", None)
    return "error", str(err.__cause__ or err)
