"""The tenant's catalog in Redis: document records, the index generation, the set of tenants.

A document record (`keel:doc:<tenant>:<doc id>`) says which version of a logical document is
published (and at which generation, by which workflow run), which version is in flight, and what
the published one holds (title, chunks, duplicates, PII counts, embedding version, groups). A
document being deleted has `deleting` instead of `version` until its leftovers are gone. The
tenant's document set holds every document with a record, and each document keeps the set of
versions it ever began, so a deletion can find every version's leftovers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import redis

from contracts.ingest import BeginOutput, DocumentRef, IngestDocumentOutput, StageOutput
from keel import ids
from keel.tenancy import check_replacement
from stores.keys import TENANTS_KEY, doc_key, doc_versions_key, generation_key, ingesting_key, tenant_docs_key

# How long a run's claim on a version outlives the run if it never releases it (a terminated run):
# longer than any small document's stage and publish with their retries.
CLAIM_TTL_S = 3600
# Delete the claim only if it is still this run's: an expired one may have been taken since.
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class Catalog:
    def __init__(self, client: redis.Redis) -> None:
        self.r = client

    def record(self, tenant: str, doc_id: str) -> dict[str, str]:
        return self.r.hgetall(doc_key(tenant, doc_id))  # type: ignore[return-value]  # a decoding client

    def published_version(self, tenant: str, doc_id: str) -> str | None:
        return self.r.hget(doc_key(tenant, doc_id), "version")  # type: ignore[return-value]

    def published_groups(self, tenant: str, source: str) -> list[str] | None:
        """The access groups of the published document at `source`, if there is one."""
        raw = self.r.hget(doc_key(tenant, ids.document_id(tenant, source)), "groups")
        return json.loads(str(raw)) if raw else None

    def generation(self, tenant: str) -> int:
        return int(self.r.get(generation_key(tenant)) or 0)

    def begin(self, doc: DocumentRef, run_id: str = "", adopt: Sequence[str] = ()) -> BeginOutput:
        """Is this exact version already published? If not, mark it in flight.

        `run_id` is the workflow run's: a version this same run published (before a crash made
        it run begin again) is its own outcome, "ingested", not a repeat ingest's "unchanged". So
        is one published, or claimed, by a run in `adopt` (a group that failed as a whole, whose
        documents this run takes over).
        """
        doc_id = ids.document_id(doc.tenant, doc.source)
        record = self.record(doc.tenant, doc_id)
        if doc.writer_groups is not None and "groups" in record:  # a replacement: may this writer?
            check_replacement(json.loads(record["groups"]), doc.groups, doc.writer_groups)
        if record.get("version") == doc.version:
            if run_id and record.get("published_run") in (run_id, *adopt):
                here = published_output(doc_id, doc.version, record)
                return BeginOutput(doc_id=doc_id, unchanged=True, published_here=here)
            return BeginOutput(doc_id=doc_id, unchanged=True)
        if run_id and not self.claim(doc.tenant, doc.version, run_id, adopt):
            return BeginOutput(doc_id=doc_id, unchanged=True, busy=True)
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(doc_key(doc.tenant, doc_id), mapping={"staging": doc.version, "source": doc.source})
        pipe.sadd(doc_versions_key(doc.tenant, doc_id), doc.version)
        pipe.sadd(tenant_docs_key(doc.tenant), doc_id)
        pipe.execute()
        return BeginOutput(doc_id=doc_id, unchanged=False)

    def claim(self, tenant: str, version: str, run_id: str, adopt: Sequence[str] = ()) -> bool:
        """Take these bytes for this workflow run, or find them taken by it already (a re-run
        step). False: another run is ingesting the same bytes right now. Runs of one document are
        kept apart by their workflow id; a group of documents (`IngestGroupWorkflow`) by this."""
        key = ingesting_key(tenant, version)
        if self.r.set(key, run_id, nx=True, ex=CLAIM_TTL_S):
            return True
        holder = self.r.get(key)
        if holder is not None and holder in adopt:  # taken over from the failed run
            self.r.set(key, run_id, ex=CLAIM_TTL_S)
            return True
        return holder == run_id

    def release(self, tenant: str, version: str, run_id: str) -> None:
        """The run published or gave up these bytes: another may take them."""
        if run_id:
            self.r.eval(_RELEASE, 1, ingesting_key(tenant, version), run_id)

    def abandon(self, tenant: str, doc_id: str, version: str) -> None:
        """An ingest of `version` failed: it is no longer in flight (a document that has no other
        version leaves no record behind)."""
        key = doc_key(tenant, doc_id)
        if self.r.hget(key, "staging") == version:
            self.r.hset(key, "staging", "")
        record = self.record(tenant, doc_id)
        if not record.get("version") and not record.get("deleting") and not record.get("staging"):
            self.forget(tenant, doc_id, in_flight="")

    def versions(self, tenant: str, doc_id: str) -> set[str]:
        """Every version of the document that was begun, and the ones its record names."""
        record = self.record(tenant, doc_id)
        named = {record.get(f, "") for f in ("version", "deleting", "staging")}
        return ({str(v) for v in self.r.smembers(doc_versions_key(tenant, doc_id))} | named) - {""}

    def versions_in_use(self, tenant: str, but: str) -> set[str]:
        """Versions published or in flight for the tenant's other documents: documents with the
        same bytes share their work files, so one's deletion must leave them to the others."""
        others = [d for d in self.r.smembers(tenant_docs_key(tenant)) if d != but]
        pipe = self.r.pipeline()
        for doc_id in others:
            pipe.hmget(doc_key(tenant, str(doc_id)), ["version", "staging"])
        return {str(v) for fields in pipe.execute() for v in fields if v}

    def forget(self, tenant: str, doc_id: str, in_flight: str) -> None:
        """Drop the document's record and version set; an ingest in flight keeps its claim."""
        pipe = self.r.pipeline(transaction=True)
        pipe.delete(doc_key(tenant, doc_id), doc_versions_key(tenant, doc_id))
        if in_flight:
            pipe.hset(doc_key(tenant, doc_id), "staging", in_flight)
            pipe.sadd(doc_versions_key(tenant, doc_id), in_flight)
        else:
            pipe.srem(tenant_docs_key(tenant), doc_id)
        pipe.execute()

    def adopted_duplicate(self, tenant: str, doc_id: str) -> None:
        """A chunk this document had skipped as a duplicate is now stored in its own right."""
        pipe = self.r.pipeline()
        pipe.hincrby(doc_key(tenant, doc_id), "chunks", 1)
        pipe.hincrby(doc_key(tenant, doc_id), "duplicates", -1)
        pipe.execute()

    def add_tenant(self, tenant: str) -> None:
        """A tenant exists from its first ingest on (queries check it)."""
        self.r.sadd(TENANTS_KEY, tenant)

    def has_tenant(self, tenant: str) -> bool:
        return bool(self.r.sismember(TENANTS_KEY, tenant))

    def document_count(self, tenant: str) -> int:
        return int(self.r.scard(tenant_docs_key(tenant)))


def staged_record(doc: DocumentRef, staged: StageOutput) -> dict[str, Any]:
    return document_record(
        doc,
        title=staged.title,
        chunks=staged.chunks,
        duplicates=staged.duplicates,
        pii=staged.pii,
        embedding_version=staged.embedding_version,
        encoding=staged.encoding,
    )


def document_record(
    doc: DocumentRef,
    *,
    title: str,
    chunks: int,
    duplicates: int,
    pii: dict[str, int],
    embedding_version: str,
    encoding: str | None,
) -> dict[str, Any]:
    """What the published document record says about this version (Redis hash `keel:doc:...`)."""
    return {
        "title": title,
        "chunks": chunks,
        "duplicates": duplicates,
        "pii": pii,
        "embedding_version": embedding_version,
        "encoding": encoding or "",
        "groups": list(doc.groups),
    }


def published_output(doc_id: str, version: str, record: dict[str, str]) -> IngestDocumentOutput:
    """The outcome a published document record describes (the record's fields as strings)."""
    return IngestDocumentOutput(
        doc_id=doc_id,
        version=version,
        status="ingested",
        chunks=int(record.get("chunks") or 0),
        duplicates=int(record.get("duplicates") or 0),
        pii=json.loads(record.get("pii") or "{}"),
        generation=int(record.get("generation") or 0),
    )
