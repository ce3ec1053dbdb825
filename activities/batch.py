"""Small activities the batch workflow uses to page its manifest and record job state."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from temporalio import activity

from activities.errors import mapped
from contracts.batch import ManifestEntry, ManifestPageInput, ManifestPageOutput, RecordOutcomesInput
from observability import metrics
from stores.blobs import BlobStore, manifest_page_key
from stores.jobs import JobStore


class BatchActivities:
    def __init__(self, blobs: BlobStore, jobs: JobStore) -> None:
        self.blobs = blobs
        self.jobs = jobs

    @activity.defn(name="batch.manifest_page")
    @mapped
    def manifest_page(self, inp: ManifestPageInput) -> ManifestPageOutput:
        raw = self.blobs.get_json(manifest_page_key(inp.job_id, inp.page))
        return ManifestPageOutput(entries=[ManifestEntry(**e) for e in raw])

    @activity.defn(name="batch.record_outcomes")
    @mapped
    def record_outcomes(self, inp: RecordOutcomesInput) -> None:
        counters = {k: int(v) for k, v in vars(inp.counters).items()}
        self.jobs.record(inp.job_id, inp.outcomes, counters, inp.status)
        if inp.outcomes:  # a retried recording counts twice: these are rates to watch, not the job's books
            job = self.jobs.get(inp.job_id)
            tenant = job.tenant if job is not None else "-"
            for o in inp.outcomes:
                metrics.INGEST_FILES.labels(status=o.status, tenant=tenant).inc()
                metrics.INGEST_CHUNKS.labels(tenant=tenant).inc(o.chunks)

    def all(self) -> Sequence[Any]:
        return [self.manifest_page, self.record_outcomes]
