"""Several small documents ingested as one unit of orchestration (IngestGroupWorkflow's steps).

A small document's own workflow costs the worker and the Temporal server about as much CPU as
its parsing and redaction together (a child workflow, three local activities, their history
events; measured by `make bench-ingest`). A group shares one workflow and one activity per step
among its documents, and embeds all their texts in one pass.

Each document still ends on its own: one that fails for good (a corrupt file, a refused
replacement) is cleaned up like a failed IngestDocument run and reported with its code, and the
others go on. A failure worth retrying (Redis or the vector store away, a parser process that
crashed) raises, so the step is retried as a whole; every write is keyed by (document, version),
so staging again rewrites the same points. Runs of one document are kept apart by their workflow
id; a group claims each version it begins instead (`Catalog.claim`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from contracts.batch import FileOutcome
from contracts.ingest import STORE_STEPS, DocumentRef, GroupMember, StagedMember
from index.catalog import staged_record
from keel.errors import KeelError
from pipelines.ingest import IngestSteps, Prepared


@dataclass(frozen=True, kw_only=True)
class GroupRun:
    """The group's workflow run: failed documents point at it, so the UI opens their history."""

    workflow_id: str
    run_id: str


class GroupSteps:
    def __init__(self, steps: IngestSteps, read: Callable[[str], bytes]) -> None:
        self.steps = steps
        self.read = read  # blob key -> the document's bytes

    def begin(self, docs: Sequence[DocumentRef], run: GroupRun) -> tuple[list[GroupMember], list[FileOutcome]]:
        """Each document begun (and its bytes claimed), or settled now: unchanged, being
        ingested by another run, published by this very run before a crash, or refused."""
        members: list[GroupMember] = []
        settled: list[FileOutcome] = []
        for doc in docs:
            try:
                begun = self.steps.begin(doc, run.run_id)
            except KeelError as err:
                if err.retryable:
                    raise
                settled.append(_failed(doc, err, run))
                continue
            if begun.published_here is not None:
                here = begun.published_here
                settled.append(_done(doc, begun.doc_id, "ingested", here.chunks, here.duplicates))
            elif begun.busy:
                settled.append(_done(doc, begun.doc_id, "unchanged", message="already being ingested"))
            elif begun.unchanged:
                settled.append(_done(doc, begun.doc_id, "unchanged"))
            else:
                members.append(GroupMember(doc=doc, doc_id=begun.doc_id))
        return members, settled

    def stage(self, members: Sequence[GroupMember], run: GroupRun) -> tuple[list[StagedMember], list[FileOutcome]]:
        """parse -> chunk -> redact -> dedupe for each document, one embedding pass for all of
        them, then each one's points written (invisible until published)."""
        prepared: list[tuple[GroupMember, Prepared]] = []
        failed: list[FileOutcome] = []
        if not members:
            return [], failed
        # Looked up once: every document of the group is sized and embedded for the same index.
        index = self.steps.index(_one_tenant(members))
        for m in members:
            try:
                prepared.append((m, self.steps.prepare(m.doc, m.doc_id, self.read(m.doc.blob_key), index)))
            except KeelError as err:
                if err.retryable:
                    raise
                self.steps.discard(m.doc, m.doc_id, run.run_id)
                failed.append(_failed(m.doc, err, run))
        if not prepared:
            return [], failed
        texts = [t for _, p in prepared for t in p.texts]
        self.steps.clock.texts(texts)
        with self.steps.clock(STORE_STEPS[0]):  # embed
            vectors = index.embedder.embed(texts)
        staged: list[StagedMember] = []
        start = 0
        for m, p in prepared:
            end = start + len(p.texts)
            self.steps.store_points(m.doc, m.doc_id, p.title, p.kept, index, vectors[start:end])
            staged.append(StagedMember(doc=m.doc, doc_id=m.doc_id, staged=p.staged(index)))
            start = end
        return staged, failed

    def publish(self, staged: Sequence[StagedMember], run: GroupRun) -> list[FileOutcome]:
        """Each staged document becomes visible (`IngestSteps.publish`), one after another."""
        outcomes: list[FileOutcome] = []
        for s in staged:
            try:
                published = self.steps.publish(s.doc, s.doc_id, staged_record(s.doc, s.staged), run.run_id)
            except KeelError as err:
                if err.retryable:
                    raise
                self.steps.discard(s.doc, s.doc_id, run.run_id)
                outcomes.append(_failed(s.doc, err, run))
                continue
            if published.already_published:
                outcomes.append(_done(s.doc, s.doc_id, "unchanged"))
                continue
            # As after a document's own publish: only its redacted chunks stay (for re-homing).
            self.steps.drop_files(s.doc, redacted=False)
            outcomes.append(_done(s.doc, s.doc_id, "ingested", s.staged.chunks, s.staged.duplicates))
        return outcomes

    def discard(self, members: Sequence[GroupMember], run: GroupRun) -> int:
        """The group failed for good: what each unpublished document left goes, claims too, but
        its raw bytes: the batch tries each document again in a workflow of its own."""
        removed = 0
        failures: list[Exception] = []
        for m in members:  # each one tried, so every claim is let go even if one cleanup fails
            try:
                removed += self.steps.discard(m.doc, m.doc_id, run.run_id, keep_raw=True)
            except Exception as exc:  # raised below, once the others are done
                failures.append(exc)
        if failures:
            raise failures[0]
        return removed


def _one_tenant(members: Sequence[GroupMember]) -> str:
    tenants = {m.doc.tenant for m in members}
    if len(tenants) != 1:
        raise ValueError(f"a group holds one tenant's documents, not {sorted(tenants)}")
    return tenants.pop()


def _done(
    doc: DocumentRef, doc_id: str, status: str, chunks: int = 0, duplicates: int = 0, message: str | None = None
) -> FileOutcome:
    return FileOutcome(
        source=doc.source,
        status=status,
        doc_id=doc_id,
        version=doc.version,
        chunks=chunks,
        duplicates=duplicates,
        message=message,
    )


def _failed(doc: DocumentRef, err: KeelError, run: GroupRun) -> FileOutcome:
    return FileOutcome(
        source=doc.source,
        status="failed",
        version=doc.version,
        code=err.code,
        message=err.message,
        workflow_id=run.workflow_id,
        run_id=run.run_id,
    )
