"""The catalog's begin: a version published or claimed by this run, or by a run it takes over."""

from __future__ import annotations

import redis

from contracts.ingest import DocumentRef
from index.catalog import Catalog
from keel import ids
from stores.keys import doc_key


def _doc(tenant: str) -> DocumentRef:
    return DocumentRef(
        tenant=tenant, groups=["all"], source="a.md", filename="a.md", version="v1", blob_key="b", size=10
    )


def test_a_claim_held_by_another_run_is_busy_unless_taken_over(redis_client: redis.Redis, tenant: str) -> None:
    catalog = Catalog(redis_client)
    doc = _doc(tenant)
    assert not catalog.begin(doc, "group-run").unchanged  # the group claims it
    assert catalog.begin(doc, "other-run").busy  # another job's run: being ingested
    taken = catalog.begin(doc, "retry-run", adopt=["group-run"])  # the failed group's document, retried
    assert not taken.unchanged and not taken.busy
    assert catalog.begin(doc, "group-run").busy  # the claim is the retry's now


def test_a_version_published_by_an_adopted_run_is_this_runs_outcome(redis_client: redis.Redis, tenant: str) -> None:
    catalog = Catalog(redis_client)
    doc = _doc(tenant)
    doc_id = ids.document_id(tenant, doc.source)
    redis_client.hset(
        doc_key(tenant, doc_id), mapping={"version": "v1", "published_run": "group-run", "chunks": 3, "generation": 1}
    )
    assert catalog.begin(doc, "retry-run").published_here is None  # someone else's: unchanged
    here = catalog.begin(doc, "retry-run", adopt=["group-run"]).published_here
    assert here is not None and here.status == "ingested"
