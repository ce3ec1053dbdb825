"""The semantic layer over the real index and Redis: a paraphrase in the same scope and generation
hits; a near miss, another scope or a later generation does not; old generations' points go."""

from __future__ import annotations

import uuid
from dataclasses import asdict

import pytest
import redis
from temporalio.client import Client

from app.query import build_query, run_query
from caches import semantic
from caches.handover import HandOver, Keeper
from caches.semantic import semantic_cache
from index.active import DEFAULT_ENCODER
from keel.config import Settings
from pipelines.deps import Deps
from stores import query_state
from stores.keys import doc_key, generation_key
from tests.conftest import SAMPLES
from tests.helpers import ingest
from vectorstore.base import Cond, Where

ASKED = "How do I rotate the API keys?"


def test_paraphrases_hit_within_their_scope_and_generation(deps: Deps, redis_client: redis.Redis) -> None:
    r, tenant = redis_client, f"s{uuid.uuid4().hex[:8]}"
    cache = semantic_cache(deps)
    index = deps.indexes.ensure(deps.indexes.index(DEFAULT_ENCODER))
    embed = index.embedder.embed_query
    r.set(generation_key(tenant), 1)
    r.hset(doc_key(tenant, "d1"), mapping={"version": "v1", "groups": '["all"]'})
    answer = {"answer": "Use keel keys create [1].", "citations": [{"doc_id": "d1", "version": "v1"}]}
    assert cache.remember(index, tenant, "scope-a", 1, ASKED, embed(ASKED), answer)

    para = "How can I rotate API keys?"
    hit = cache.lookup(index, tenant, [], "scope-a", 1, para, embed(para))
    assert hit is not None and hit.question == ASKED and hit.hit.answer["answer"] == answer["answer"]
    near = "How do I rotate the API keys in 2019?"
    assert cache.lookup(index, tenant, [], "scope-a", 1, near, embed(near)) is None
    assert cache.lookup(index, tenant, [], "scope-b", 1, para, embed(para)) is None
    assert cache.lookup(index, f"{tenant}x", [], "scope-a", 1, para, embed(para)) is None

    r.set(generation_key(tenant), 2)  # a publish: the entry and its point are of the past
    assert cache.lookup(index, tenant, [], "scope-a", 2, para, embed(para)) is None
    assert cache.remember(index, tenant, "scope-a", 2, ASKED, embed(ASKED), answer)
    points = deps.store.count(cache.collection(index), Where(must=(Cond("tenant", value=tenant),)))
    assert points == 1  # the generation-1 point went when generation 2 stored one


def test_question_points_live_no_longer_than_their_entries(
    deps: Deps, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    r, tenant = redis_client, f"s{uuid.uuid4().hex[:8]}"
    cache = semantic_cache(deps)
    index = deps.indexes.ensure(deps.indexes.index(DEFAULT_ENCODER))
    r.set(generation_key(tenant), 1)
    answer = {"answer": "x [1].", "citations": []}
    now = 1_000_000.0
    monkeypatch.setattr(semantic.time, "time", lambda: now)
    for i in range(5):  # one generation, many questions: nothing publishes, so no generation sweeps
        asked = f"How do I rotate key number {i}?"
        assert cache.remember(index, tenant, "scope", 1, asked, index.embedder.embed_query(asked), answer)
    mine = Where(must=(Cond("tenant", value=tenant),))
    assert deps.store.count(cache.collection(index), mine) == 5
    now += cache.ttl_s + 1  # their entries have expired in Redis by now
    later = "What changed since then?"
    assert cache.remember(index, tenant, "scope", 1, later, index.embedder.embed_query(later), answer)
    assert deps.store.count(cache.collection(index), mine) == 1


@pytest.mark.stack
@pytest.mark.usefixtures("worker")
async def test_the_workflows_retrieve_step_answers_a_paraphrase(
    client: Client, settings: Settings, redis_client: redis.Redis, deps: Deps, tenant: str
) -> None:
    """The one place the semantic cache is looked up: QueryWorkflow's retrieve step, which leaves
    the question's vector in the request's state for the edge to keep the answer under."""
    await ingest(client, settings, redis_client, [SAMPLES], tenant)
    asked = build_query(settings, redis_client, uuid.uuid4().hex, tenant, [], "How do I retry failed files?")
    asked.cache_scope = "workflow-scope"
    first = await run_query(client, settings, asked)
    vector = query_state.question_vector(redis_client, tenant, asked.request_id)
    assert vector is not None and first.cache == "miss"
    answer = {k: v for k, v in asdict(first).items() if k not in ("request_id", "timings_ms", "attempts")}
    index = deps.indexes.by_version(tenant, first.embedding_version)
    assert semantic_cache(deps).remember(
        index, tenant, "workflow-scope", first.generation, asked.question, vector, answer
    )

    para = build_query(settings, redis_client, uuid.uuid4().hex, tenant, [], "How can I retry files that failed?")
    para.cache_scope = "workflow-scope"
    hit = await run_query(client, settings, para)
    assert hit.cache == "semantic" and hit.cached_question == asked.question and hit.answer == first.answer
    para.request_id, para.cache_read = uuid.uuid4().hex, False  # the caller wants a fresh answer
    assert (await run_query(client, settings, para)).cache == "miss"


def test_an_api_process_without_the_index_hands_its_points_to_the_worker(deps: Deps, redis_client: redis.Redis) -> None:
    """An API process of its own keeps the entry and hands the point over; the worker's keeper adds
    it, and then a paraphrase hits. A point whose tenant moved on meanwhile is dropped."""
    r, tenant, queue = redis_client, f"h{uuid.uuid4().hex[:8]}", f"test:pending:{uuid.uuid4().hex}"
    cache = semantic_cache(deps)
    index = deps.indexes.ensure(deps.indexes.index(DEFAULT_ENCODER))
    embed = index.embedder.embed_query
    r.set(generation_key(tenant), 1)
    r.hset(doc_key(tenant, "d1"), mapping={"version": "v1", "groups": '["all"]'})
    answer = {"answer": "Use keel keys create [1].", "citations": [{"doc_id": "d1", "version": "v1"}]}
    api = HandOver(r, cache.entries, queue=queue)
    keeper = Keeper(r, cache, deps.indexes, queue=queue)
    para = "How can I rotate API keys?"

    assert api.remember(index.version.key, tenant, "scope", 1, ASKED, embed(ASKED), answer)
    assert cache.lookup(index, tenant, [], "scope", 1, para, embed(para)) is None  # not kept yet: a miss
    assert keeper.keep_next(wait_s=1.0)
    hit = cache.lookup(index, tenant, [], "scope", 1, para, embed(para))
    assert hit is not None and hit.hit.answer["answer"] == answer["answer"]

    assert api.remember(index.version.key, tenant, "scope", 1, "How do I delete a document?", embed(ASKED), answer)
    r.set(generation_key(tenant), 2)  # published again before the worker got to it
    assert not keeper.keep_next(wait_s=1.0) and r.llen(queue) == 0
    assert not keeper.keep_next(wait_s=0.1)  # nothing pending
