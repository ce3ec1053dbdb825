"""Removing data for good: one document (DELETE /v1/documents/{id}), or a whole tenant.

A document's deletion takes it out of the index the way a publish puts a version in
(`index.publish.Publisher.withdraw`: under the tenant's publish lock, in one generation step),
after handing the paragraphs other documents had deferred to it back to them. Then every
version it ever had loses its dedupe entries (`index.dedupe.Deduper.forget`), its raw bytes and
its work files (unless another document with the same bytes still uses them), and last its
record, so a retry after a crash at any point finds what is left and removes it. An ingest of
the same source that is in flight keeps its own version.

A tenant's erasure removes every point, Redis key, blob and job of the tenant. API keys and the
audit log stay: they say who may act for the tenant and what was done, the erasure included.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from caches.entries import forget_document
from caches.semantic import semantic_cache
from contracts.delete import DocumentRemoved, TenantErased
from contracts.ingest import DocumentRef
from keel.errors import DocumentForbidden
from keel.tenancy import holds
from pipelines.deps import Deps
from pipelines.ingest import IngestSteps
from stores.blobs import manifest_dir, raw_key, tenant_dirs, work_dir, work_key
from stores.jobs import JobStore
from stores.keys import TENANTS_KEY, matches, tenant_patterns
from stores.term_stats import Contribution


class Deleter:
    def __init__(self, deps: Deps, steps: IngestSteps) -> None:
        self.d = deps
        self.steps = steps
        self.catalog = steps.catalog

    def delete_document(self, tenant: str, doc_id: str, writer_groups: Sequence[str] | None) -> DocumentRemoved:
        record = self.catalog.record(tenant, doc_id)
        if not record.get("version") and not record.get("deleting"):
            return DocumentRemoved(doc_id=doc_id, found=False)  # never published here, or gone already
        groups: list[str] = json.loads(record.get("groups") or "[]")
        if writer_groups is not None and not holds(writer_groups, groups):
            raise DocumentForbidden(
                f"the document is restricted to groups {sorted(groups)}; the key does not hold all of them"
            )
        in_flight = record.get("staging", "")
        ref = DocumentRef(
            tenant=tenant, groups=groups, source=record.get("source", ""), filename="", version="", blob_key="", size=0
        )
        rehomed = 0

        def rehome(old: str, generation: int) -> Contribution:
            nonlocal rehomed
            stored = self.steps.rehome_holders(ref, doc_id, old, generation)
            rehomed = stored.chunks
            return stored

        withdrawn = self.steps.publisher.withdraw(tenant, doc_id, in_flight, before_flip=rehome)
        forget_document(self.d.redis, tenant, doc_id)  # cached answers quoting it
        JobStore(self.d.redis).forget_document(tenant, doc_id)  # the jobs that ingested it name it
        if self.d.vault is not None:  # the originals of names no other document holds
            self.d.vault.forget_document(tenant, doc_id)
        versions = sorted(self.catalog.versions(tenant, doc_id) - {in_flight})
        entries = sum(self.steps.deduper.forget(tenant, groups, doc_id, v, self._texts(tenant, v)) for v in versions)
        shared = self.catalog.versions_in_use(tenant, but=doc_id) | {in_flight}
        blobs = 0
        for v in versions:
            blobs += self.d.blobs.delete(raw_key(tenant, v, doc_id))
            if v not in shared:
                blobs += self.d.blobs.delete(work_dir(tenant, v))
        self.catalog.forget(tenant, doc_id, in_flight)
        return DocumentRemoved(
            doc_id=doc_id,
            found=True,
            versions=len(versions),
            points=withdrawn.points,
            dedupe_entries=entries,
            blobs=blobs,
            rehomed=rehomed,
        )

    def _texts(self, tenant: str, version: str) -> list[str]:
        """A version's chunk texts, in order, as its dedupe decisions saw them (redacted)."""
        key = work_key(tenant, version, "redacted.json")
        if not self.d.blobs.exists(key):
            return []
        return [str(c["text"]) for c in sorted(self.d.blobs.get_json(key), key=lambda c: int(c["index"]))]

    def erase_tenant(self, tenant: str) -> TenantErased:
        r = self.d.redis
        documents = self.catalog.document_count(tenant)
        points = self.steps.publisher.erase_points(tenant)
        semantic_cache(self.d).purge(tenant)  # the questions it asked, kept beside its indexes
        keys = 0
        for pattern in tenant_patterns(tenant):
            batch: list[str] = []
            for key in r.scan_iter(match=pattern, count=1000):
                if not matches(str(key), pattern):
                    continue  # a pattern is matched exactly, never as a glob (see stores.keys.matches)
                batch.append(str(key))
                if len(batch) >= 500:
                    keys += int(r.unlink(*batch))
                    batch = []
            if batch:
                keys += int(r.unlink(*batch))
        jobs = JobStore(r).erase(tenant)
        blobs = sum(self.d.blobs.delete(folder) for folder in tenant_dirs(tenant))
        blobs += sum(self.d.blobs.delete(manifest_dir(job_id)) for job_id in jobs)
        r.srem(TENANTS_KEY, tenant)
        return TenantErased(
            tenant=tenant, documents=documents, points=points, redis_keys=keys, blobs=blobs, jobs=len(jobs)
        )
