"""A model that drops or misplaces citations (the scripted stand-in for a hosted or local LLM):
validation attributes them, flags what no passage supports, and the tenant's policy acts on it."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis
from temporalio.client import Client

from app.query import build_query, run_query
from contracts.query import QueryOutput
from infra.worker import build_workers, run_workers
from keel.config import Settings
from pipelines import answer as answer_steps
from pipelines.deps import Deps
from stores import guard_policy
from tests.conftest import SAMPLES
from tests.helpers import ingest
from tests.scripted_llm import ScriptedLLM, scripted_llm

pytestmark = [pytest.mark.stack, pytest.mark.usefixtures("worker")]

UNCITED = "Run keel ingest again on the same paths to retry the failed files."
UNGROUNDED = "Failed files are retried automatically every night by the scheduler in the cloud console."


@asynccontextmanager
async def _query_worker(client: Client, settings: Settings, deps: Deps) -> AsyncIterator[None]:
    with (
        ThreadPoolExecutor(max_workers=settings.max_concurrent_activities + 4) as executor,
        ThreadPoolExecutor(max_workers=settings.max_concurrent_query_activities) as queries,
    ):
        async with run_workers(build_workers(client, settings, deps, executor, queries, queues=("query",))):
            yield


@pytest.fixture
def llm_settings(settings: Settings) -> Iterator[tuple[Settings, ScriptedLLM]]:
    with scripted_llm(["ok"], answer=UNCITED) as llm:
        provider: dict[str, Any] = {"name": "scripted", "base_url": llm.base_url, "model": "scripted-0.5b"}
        yield (
            settings.model_copy(
                update={
                    "providers": [provider],
                    "routes": {"cheap": ["scripted"], "strong": ["scripted"]},
                    "query_task_queue": f"grounded-{uuid.uuid4().hex[:6]}",
                }
            ),
            llm,
        )


async def _ask(client: Client, settings: Settings, r: redis.Redis, tenant: str, question: str) -> QueryOutput:
    return await run_query(client, settings, build_query(settings, r, uuid.uuid4().hex, tenant, [], question))


async def test_an_uncited_answer_gets_its_citations_from_the_passages(
    client: Client,
    settings: Settings,
    redis_client: redis.Redis,
    deps: Deps,
    tenant: str,
    llm_settings: tuple[Settings, ScriptedLLM],
) -> None:
    custom, _ = llm_settings
    await ingest(client, settings, redis_client, [SAMPLES], tenant)
    async with _query_worker(client, custom, deps):
        out = await _ask(client, custom, redis_client, tenant, "How do I retry failed files?")
    assert out.provider == "scripted" and out.citations_from == "attributed"
    assert out.citations and any(c.source.endswith("faq.txt") for c in out.citations)
    assert re.search(r"files \[\d\]\.$", out.answer), out.answer  # the marker goes where the model left none
    assert "citations_attributed" in out.degradations and "ungrounded" not in out.flags
    assert 0 < out.first_token_ms <= out.timings_ms["generate"]  # streamed, its first token timed


async def test_an_ungrounded_answer_is_flagged_retried_or_replaced_as_the_tenant_says(
    client: Client,
    settings: Settings,
    redis_client: redis.Redis,
    deps: Deps,
    tenant: str,
    llm_settings: tuple[Settings, ScriptedLLM],
) -> None:
    custom, llm = llm_settings
    llm.answer = UNGROUNDED
    await ingest(client, settings, redis_client, [SAMPLES], tenant)
    question = "How do I retry failed files?"
    async with _query_worker(client, custom, deps):
        flagged = await _ask(client, custom, redis_client, tenant, question)
        assert "ungrounded" in flagged.flags and "ungrounded" in flagged.degradations
        assert flagged.provider == "scripted" and not flagged.citations and len(llm.requests) == 1

        guard_policy.write(redis_client, tenant, guard_policy.GuardPolicy(), grounding="retry")
        retried = await _ask(client, custom, redis_client, tenant, question)
        strict = llm.requests[-1]["messages"][0]["content"]
        assert len(llm.requests) == 3 and "Every sentence you write must repeat" in strict
        assert retried.prompt_id == "answer-strict.v1" and "ungrounded_retried" in retried.degradations
        assert "ungrounded" in retried.flags  # the scripted model says the same again

        guard_policy.write(redis_client, tenant, guard_policy.GuardPolicy(), grounding="extractive")
        replaced = await _ask(client, custom, redis_client, tenant, question)
        assert replaced.provider == "extractive" and "ungrounded_extractive" in replaced.degradations
        assert "ungrounded" not in replaced.flags and replaced.citations


async def test_the_verifier_reads_each_citation_back_before_it_stands(
    client: Client,
    settings: Settings,
    redis_client: redis.Redis,
    deps: Deps,
    tenant: str,
    llm_settings: tuple[Settings, ScriptedLLM],
) -> None:
    custom, llm = llm_settings
    custom = custom.model_copy(update={"verifier": "scripted"})
    await ingest(client, settings, redis_client, [SAMPLES / "faq.txt"], tenant)
    question = "How do I retry failed files?"
    async with _query_worker(client, custom, deps):
        accepted = await _ask(client, custom, redis_client, tenant, question)
        asked = llm.verifications[-1]["messages"][1]["content"]
        assert asked.startswith("Passage: ") and UNCITED in asked  # the passage, then the sentence
        assert accepted.citations_from == "attributed" and accepted.citations and "ungrounded" not in accepted.flags

        llm.verdict = "no"  # words and facts match, the verifier says the passage does not say it
        refused = await _ask(client, custom, redis_client, tenant, "How can failed files be retried?")
        assert not refused.citations and "ungrounded" in refused.flags
        assert len(llm.verifications) >= 2


async def test_a_provider_asks_with_its_own_prompt_and_stop_sequences(
    client: Client,
    settings: Settings,
    redis_client: redis.Redis,
    deps: Deps,
    tenant: str,
    llm_settings: tuple[Settings, ScriptedLLM],
) -> None:
    custom, llm = llm_settings
    small = {**custom.providers[0], "prompt": "answer-small.v1", "stop": ["\nQuestion:"]}
    custom = custom.model_copy(update={"providers": [small]})
    await ingest(client, settings, redis_client, [SAMPLES / "faq.txt"], tenant)
    async with _query_worker(client, custom, deps):
        out = await _ask(client, custom, redis_client, tenant, "How do I retry failed files?")
    sent = llm.requests[-1]
    assert sent["stop"] == ["\nQuestion:"]
    assert "finished in 1889 [1]." in sent["messages"][0]["content"]  # its worked example
    assert sent["messages"][1]["content"].startswith("[1] ")  # the sources numbered as it is to cite them
    assert out.prompt_id == "answer-small.v1" and len(out.prompt_hash) == 16


async def test_an_answer_validation_could_not_check_says_so(
    client: Client, settings: Settings, redis_client: redis.Redis, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("validation broke")

    monkeypatch.setattr(answer_steps, "check_citations", broken)
    await ingest(client, settings, redis_client, [SAMPLES / "faq.txt"], tenant)
    inp = build_query(settings, redis_client, uuid.uuid4().hex, tenant, [], "How do I retry failed files?")
    out = await run_query(client, settings, inp)
    assert "validate_skipped" in out.degradations and "unverified" in out.flags
