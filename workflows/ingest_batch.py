"""IngestBatchWorkflow: a directory or list of files, as a sliding window of document workflows.

At most `window` documents are in flight; as each finishes the next starts. Progress is a query
the CLI polls, and per-file outcomes are flushed to Redis in small batches. After
`continue_every` documents the run drains its window and continues as new from its cursor, so a
100k-file batch keeps a small history.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

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
    from contracts.ingest import DocumentRef, IngestDocumentInput, IngestGroupInput
    from keel.errors import OUTAGE_CODES
    from keel.ids import ingest_group_workflow_id, ingest_workflow_id
    from workflows.ingest_document import IngestDocumentWorkflow
    from workflows.ingest_group import IngestGroupWorkflow

FLUSH_EVERY = 50
GROUP_SMALL_DOCUMENTS = "group-small-documents"


@dataclass
class _Group:
    """Small documents gathered for one IngestGroupWorkflow: at most `size` of them, and no more
    bytes in all than one small document may have, so the group's steps keep a small one's limits."""

    entries: list[ManifestEntry] = field(default_factory=list)
    page: int = 0  # where its first entry is in the manifest: the group's workflow id
    index: int = 0
    size_bytes: int = 0

    def fits(self, entry: ManifestEntry, size: int) -> bool:
        return not self.entries or (len(self.entries) < size and policies.is_small(self.size_bytes + entry.size))

    def add(self, entry: ManifestEntry, page: int, index: int) -> None:
        if not self.entries:
            self.page, self.index = page, index
        self.entries.append(entry)
        self.size_bytes += entry.size


@workflow.defn(name="IngestBatch")
class IngestBatchWorkflow:
    def __init__(self) -> None:
        self._job_id = ""
        self._window = 1
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
        self._window = inp.window
        self._counters = inp.counters
        self._counters.total = inp.total
        grouping = inp.group_size > 1
        if grouping:  # a deprecated patch (docs/concepts/durability-and-replay.md), called one more release
            workflow.deprecate_patch(GROUP_SMALL_DOCUMENTS)
        group = _Group()
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
                started += 1
                if grouping and policies.is_small(entry.size):
                    if not group.fits(entry, inp.group_size):
                        await self._start(self._ingest_group(inp, group))
                        group = _Group()
                    group.add(entry, page, index - 1)
                    continue
                await self._start(self._ingest(inp, entry))
            if group.entries:  # a page's last group, or the last before continuing as new
                await self._start(self._ingest_group(inp, group))
                group = _Group()
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
                        group_size=inp.group_size,
                    )
                )
        await self._drain()
        self._status = "completed"
        await self._flush()
        return self._counters

    async def _start(self, child: Coroutine[Any, Any, None]) -> None:
        """Run a child workflow (a document's or a group's) once the window has room."""
        while len(self._pending) >= self._window:
            await self._wait_one()
        self._pending.add(asyncio.create_task(child))
        if len(self._outcomes) >= FLUSH_EVERY:
            await self._flush()

    def _document(self, inp: IngestBatchInput, entry: ManifestEntry) -> DocumentRef:
        assert entry.version is not None and entry.blob_key is not None
        return DocumentRef(
            tenant=inp.tenant,
            groups=inp.groups,
            source=entry.source,
            filename=entry.filename,
            version=entry.version,
            blob_key=entry.blob_key,
            size=entry.size,
            writer_groups=inp.writer_groups,
        )

    async def _ingest_group(self, inp: IngestBatchInput, group: _Group) -> None:
        wf_id = ingest_group_workflow_id(inp.job_id, group.page, group.index)
        try:
            out = await workflow.execute_child_workflow(
                IngestGroupWorkflow.run,
                IngestGroupInput(docs=[self._document(inp, e) for e in group.entries]),
                id=wf_id,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            )
        except (ChildWorkflowError, WorkflowAlreadyStartedError) as err:  # (ids are unique within a job)
            if isinstance(err, ChildWorkflowError) and _reason(err)[0] in OUTAGE_CODES:
                # Redis or the vector store away: each document would fail alike.
                for entry in group.entries:
                    self._finish(_failed(entry, err))
                return
            # The group failed as a whole for another reason: each document in a workflow of
            # its own, so one that broke the group fails alone and the others go in. What the
            # group's run published or claimed before it failed counts as theirs.
            adopt = [err.run_id] if isinstance(err, ChildWorkflowError) and err.run_id else []
            await asyncio.gather(*(self._ingest(inp, entry, adopt) for entry in group.entries))
            return
        for outcome in out.outcomes:
            outcome.workflow_id = outcome.workflow_id or wf_id
            self._finish(outcome)

    async def _ingest(self, inp: IngestBatchInput, entry: ManifestEntry, adopt: list[str] | None = None) -> None:
        doc = self._document(inp, entry)
        wf_id = ingest_workflow_id(inp.tenant, doc.version)
        try:
            out = await workflow.execute_child_workflow(
                IngestDocumentWorkflow.run,
                IngestDocumentInput(doc=doc, adopt_runs=list(adopt or [])),
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
            self._finish(_failed(entry, err))
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


def _failed(entry: ManifestEntry, err: ChildWorkflowError) -> FileOutcome:
    """The entry failed with the child's innermost error, pointing at the child's run."""
    code, message = _reason(err)
    return FileOutcome(
        source=entry.source,
        status="failed",
        version=entry.version,
        code=code,
        message=message,
        workflow_id=err.workflow_id,
        run_id=err.run_id,
    )


def _reason(err: FailureError) -> tuple[str, str]:
    """The innermost application error: its type is Keel's error code."""
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, ApplicationError):
            return cause.type or "error", cause.message
        cause = cause.__cause__ or getattr(cause, "cause", None)
    return "error", str(err.__cause__ or err)
