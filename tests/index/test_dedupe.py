"""Deduplication against a real Redis."""

from __future__ import annotations

import redis

from index.dedupe import Deduper
from stores.keys import doc_key

PARA = (
    "Temporal workflows run both the ingestion and the query path, so every failed step is retried "
    "with backoff, recorded in the history and visible in the UI for replay by an operator."
)
OTHER = "Qdrant stores dense and sparse vectors with payload indexes on tenant and access groups for filtering."


def _publish(r: redis.Redis, tenant: str, doc: str, version: str) -> None:
    r.hset(doc_key(tenant, doc), mapping={"version": version, "staging": ""})


def _stage(r: redis.Redis, tenant: str, doc: str, version: str) -> None:
    r.hset(doc_key(tenant, doc), mapping={"staging": version})


def test_exact_and_near_duplicates_across_documents(redis_client: redis.Redis, tenant: str) -> None:
    d = Deduper(redis_client, threshold=0.85)
    _stage(redis_client, tenant, "a", "v1")
    first = d.decide(tenant, ["all"], "a", "v1", [PARA, OTHER])
    assert [x.duplicate_of for x in first] == [None, None]
    _publish(redis_client, tenant, "a", "v1")

    _stage(redis_client, tenant, "b", "v1")
    near = PARA.replace("an operator", "the operator")  # one word changed
    second = d.decide(tenant, ["all"], "b", "v1", [PARA, near, "Something else entirely about billing."])
    assert second[0].duplicate_of is not None and second[0].duplicate_of.doc_id == "a"
    assert second[1].duplicate_of is not None and second[1].duplicate_of.doc_id == "a"
    assert second[1].similarity >= 0.85
    assert second[2].duplicate_of is None


def test_repeat_within_one_document_is_stored_once(redis_client: redis.Redis, tenant: str) -> None:
    d = Deduper(redis_client, threshold=0.85)
    _stage(redis_client, tenant, "a", "v1")
    out = d.decide(tenant, ["all"], "a", "v1", [PARA, OTHER, PARA])
    assert [x.duplicate_of is None for x in out] == [True, True, False]
    assert out[2].duplicate_of is not None and out[2].duplicate_of.chunk == 0


def test_retry_of_the_same_document_is_not_a_duplicate_of_itself(redis_client: redis.Redis, tenant: str) -> None:
    d = Deduper(redis_client, threshold=0.85)
    _stage(redis_client, tenant, "a", "v1")
    assert d.decide(tenant, ["all"], "a", "v1", [PARA])[0].duplicate_of is None
    assert d.decide(tenant, ["all"], "a", "v1", [PARA])[0].duplicate_of is None


def test_new_version_of_a_document_keeps_its_text(redis_client: redis.Redis, tenant: str) -> None:
    d = Deduper(redis_client, threshold=0.85)
    _stage(redis_client, tenant, "a", "v1")
    d.decide(tenant, ["all"], "a", "v1", [PARA])
    _publish(redis_client, tenant, "a", "v1")
    _stage(redis_client, tenant, "a", "v2")
    assert d.decide(tenant, ["all"], "a", "v2", [PARA])[0].duplicate_of is None


def test_stale_owner_is_taken_over(redis_client: redis.Redis, tenant: str) -> None:
    d = Deduper(redis_client, threshold=0.85)
    _stage(redis_client, tenant, "a", "v1")
    d.decide(tenant, ["all"], "a", "v1", [PARA])
    _publish(redis_client, tenant, "a", "v2")  # a was replaced by a version without PARA
    _stage(redis_client, tenant, "b", "v1")
    assert d.decide(tenant, ["all"], "b", "v1", [PARA])[0].duplicate_of is None


def test_scope_is_tenant_and_access_groups(redis_client: redis.Redis, tenant: str) -> None:
    d = Deduper(redis_client, threshold=0.85)
    other_tenant = tenant + "x"
    for t, doc in ((tenant, "a"), (other_tenant, "b")):
        _stage(redis_client, t, doc, "v1")
    d.decide(tenant, ["hr"], "a", "v1", [PARA])
    # the same paragraph for other readers, or in another tenant, is stored again
    assert d.decide(tenant, ["eng"], "c", "v1", [PARA])[0].duplicate_of is None
    assert d.decide(other_tenant, ["hr"], "b", "v1", [PARA])[0].duplicate_of is None


def test_an_unpublished_owner_never_swallows_text(redis_client: redis.Redis, tenant: str) -> None:
    """If the first document is still in flight (and may fail), the second keeps its copy."""
    d = Deduper(redis_client, threshold=0.85)
    _stage(redis_client, tenant, "a", "v1")
    d.decide(tenant, ["all"], "a", "v1", [PARA])  # a never publishes: say its embed step fails
    _stage(redis_client, tenant, "b", "v1")
    assert d.decide(tenant, ["all"], "b", "v1", [PARA])[0].duplicate_of is None
