"""The exact answer cache through the HTTP API: the same question in the same scope is answered
from Redis; another scope, another tenant or a changed document never is."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from temporalio.client import Client

from gateway.keys import QUERY
from keel.config import Settings
from tests.api.conftest import Auth, stream_events
from tests.conftest import SAMPLES
from tests.helpers import ingest

pytestmark = [pytest.mark.stack, pytest.mark.usefixtures("worker")]

QUESTION = "How do I retry failed files?"


async def ask(
    api: httpx.AsyncClient, headers: dict[str, str], question: str = QUESTION, **options: Any
) -> dict[str, Any]:
    resp = await api.post("/v1/query", json={"question": question, **options}, headers=headers)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def until_cached(api: httpx.AsyncClient, headers: dict[str, str], question: str = QUESTION) -> dict[str, Any]:
    """The answer is stored after it is sent: ask until it comes from the cache."""
    for _ in range(50):
        body = await ask(api, headers, question)
        if body["cache"] == "exact":
            return body
        await asyncio.sleep(0.05)
    raise AssertionError("the answer was never served from the cache")


def cited(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c["doc_id"], c["version"]) for c in body["citations"]]


async def test_the_same_question_in_the_same_scope_is_served_from_the_cache(
    api: httpx.AsyncClient, sampled: str, auth: Auth
) -> None:
    reader = auth(sampled, roles=(QUERY,))
    first = await ask(api, reader)
    assert first["cache"] == "miss" and first["citations"] and first["generation"] > 0
    hit = await until_cached(api, reader, "  how do I RETRY failed files ")  # case, spacing, punctuation
    assert hit["answer"] == first["answer"] and cited(hit) == cited(first)
    assert hit["request_id"] != first["request_id"] and "cache" in hit["timings_ms"]
    assert hit["tokens_in"] == hit["tokens_out"] == 0 and hit["embedding_version"] == first["embedding_version"]
    fresh = await ask(api, reader, cache=False)  # the caller may always ask for a fresh answer
    assert fresh["cache"] == "snippet" and fresh["answer"] == first["answer"]  # generated anew, retrieval kept


async def test_another_scope_never_gets_the_answer(
    api: httpx.AsyncClient, client: Client, settings: Settings, redis_client: redis.Redis, sampled: str, auth: Auth
) -> None:
    reader = auth(sampled, roles=(QUERY,))
    await ask(api, reader)
    await until_cached(api, reader)
    # Other groups, other options, another tenant with the same documents: each its own scope.
    hr = auth(sampled, roles=(QUERY,), groups=("hr",))
    assert (await ask(api, hr))["cache"] == "miss"
    assert (await ask(api, reader, mode="bm25"))["cache"] == "miss"
    assert (await ask(api, reader, question=f"{QUESTION} Tell me more."))["cache"] == "miss"
    other = f"{sampled}-o"
    await ingest(client, settings, redis_client, [SAMPLES], other)
    assert (await ask(api, auth(other, roles=(QUERY,))))["cache"] == "miss"


async def test_a_changed_or_deleted_document_is_never_answered_from_the_cache(
    api: httpx.AsyncClient,
    client: Client,
    settings: Settings,
    redis_client: redis.Redis,
    tenant: str,
    auth: Auth,
    tmp_path: Path,
) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(SAMPLES, corpus)
    await ingest(client, settings, redis_client, [corpus], tenant)
    writer = auth(tenant)
    before = await ask(api, writer)
    await until_cached(api, writer)
    faq = corpus / "faq.txt"
    assert any(c["source"].endswith("faq.txt") for c in before["citations"])

    faq.write_text(faq.read_text().replace("Run keel ingest again", "Press the retry button in the console"))
    await ingest(client, settings, redis_client, [faq], tenant)  # a new version of a cited document
    after = await ask(api, writer)
    assert after["cache"] == "miss" and after["generation"] > before["generation"]
    assert cited(after) != cited(before)
    await until_cached(api, writer)

    doc_id = next(c["doc_id"] for c in after["citations"] if c["source"].endswith("faq.txt"))
    assert (await api.delete(f"/v1/documents/{doc_id}", headers=writer)).status_code == 200
    gone = await ask(api, writer)
    assert gone["cache"] == "miss" and all(c["doc_id"] != doc_id for c in gone["citations"])


async def test_a_paraphrase_is_served_from_the_semantic_cache_and_a_near_miss_is_not(
    api: httpx.AsyncClient, sampled: str, auth: Auth
) -> None:
    reader = auth(sampled, roles=(QUERY,))
    first = await ask(api, reader)
    await until_cached(api, reader)  # kept (both layers) once the first answer was sent
    para = await ask(api, reader, question="How can I retry files that failed?")
    assert para["cache"] == "semantic", para
    assert para["answer"] == first["answer"]
    assert "cached_question" not in para  # the question it matched was another caller's words: never shown
    assert cited(para) == cited(first) and para["tokens_in"] == 0
    for near_miss in (
        "How do I retry failed files from 2019?",  # a number the cached question does not have
        "Why do failed files not retry?",  # another kind of question, and a negation
        "How do I retry failed files on Kubernetes?",  # a name the cached question does not have
    ):
        assert (await ask(api, reader, question=near_miss))["cache"] == "miss", near_miss
    assert (await ask(api, reader, question="How can I retry files that failed?", cache=False))["cache"] == "miss"
    other_scope = auth(sampled, roles=(QUERY,), groups=("hr",))
    assert (await ask(api, other_scope, question="How can I retry files that failed?"))["cache"] == "miss"


async def test_a_repeated_question_is_answered_anew_on_the_rankings_kept_for_it(
    api: httpx.AsyncClient, redis_client: redis.Redis, sampled: str, auth: Auth
) -> None:
    reader = auth(sampled, roles=(QUERY,))
    question = QUESTION
    first = await ask(api, reader, question=question)
    assert first["cache"] == "miss" and "rerank" in first["timings_ms"]
    # Generated again (the caller asked for a fresh answer), on retrieval's and re-scoring's kept results.
    again = await ask(api, reader, question=question, cache=False)
    assert again["cache"] == "snippet" and "rerank" not in again["timings_ms"]
    assert again["answer"] == first["answer"] and cited(again) == cited(first)
    # A stream generates its answer, and skips retrieval too; its sources come as before.
    events = await stream_events(api, reader, f"  {question.upper()} ")
    kinds = [e for e, _ in events]
    assert kinds[0] == "sources" and kinds[-1] == "done" and "token" in kinds
    done = events[-1][1]
    assert done["cache"] == "snippet" and cited(done) == cited(first)
    # Kept as rankings only: no passage text stays in Redis once the requests are over.
    kept = [k for k in redis_client.scan_iter(match=f"keel:cache:{{{sampled}}}:snippet:*")]
    assert kept and all(first["citations"][0]["snippet"] not in str(redis_client.get(k)) for k in kept)
    # Other groups are another scope.
    other = auth(sampled, roles=(QUERY,), groups=("hr",))
    assert (await ask(api, other, question=question, cache=False))["cache"] == "miss"
