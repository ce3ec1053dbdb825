"""The provider chain against a scripted OpenAI-compatible server: every fault falls back, with its reason."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from contracts.query import ContextPassage
from generation.breaker import CLOSED, HALF_OPEN, OPEN, Breaker, BreakerConfig
from generation.chain import LinkPolicy, ProviderChain, RetryConfig
from generation.extractive import ExtractiveAnswerer
from generation.openai_compat import OpenAICompatProvider, ProviderConfig
from generation.providers import GenerationRequest
from tests.scripted_llm import ANSWER, scripted_llm

PASSAGE = ContextPassage(
    ref=1,
    doc_id="d1",
    version="v1",
    source="faq.txt",
    title="FAQ",
    section_path=["FAQ"],
    chunk_indexes=[0],
    text="Run keel ingest again on the same paths to retry failures.",
    score=1.0,
)


def _request(timeout_s: float, first_token_timeout_s: float | None = None) -> GenerationRequest:
    return GenerationRequest(
        "prompt", "How do I retry failures?", [PASSAGE], 64, timeout_s, first_token_timeout_s=first_token_timeout_s
    )


def _chain(
    redis_client: redis.Redis,
    base_url: str,
    stream: bool = False,
    link: LinkPolicy | None = None,
    **breaker: float,
) -> tuple[ProviderChain, str]:
    name = f"llm-{uuid.uuid4().hex[:6]}"
    provider = OpenAICompatProvider(ProviderConfig(name, base_url, "scripted", stream=stream))
    config = BreakerConfig(int(breaker.get("failures", 3)), breaker.get("reset", 30.0))
    chain = ProviderChain(
        {name: provider},
        ExtractiveAnswerer(),
        Breaker(redis_client, config),
        RetryConfig(2, 0.01, 0.05),
        links={name: link or LinkPolicy()},
    )
    return chain, name


@pytest.mark.parametrize(
    ("script", "reasons"),
    [
        (["500"], ["http_500", "http_500"]),
        (["429"], ["rate_limited", "rate_limited"]),
        (["timeout"], ["timeout"]),
        (["malformed"], ["malformed_response"]),
    ],
)
def test_each_fault_falls_back_to_extractive_with_its_reason(
    redis_client: redis.Redis, script: list[str], reasons: list[str]
) -> None:
    with scripted_llm(script, sleep_s=2.0) as llm:
        chain, name = _chain(redis_client, llm.base_url)
        started = time.monotonic()
        result = chain.run([name], _request, deadline=time.monotonic() + 1.0)
    assert time.monotonic() - started < 2.0  # a hung provider costs its budget, not more
    assert result.provider.name == "extractive"
    failed = [a for a in result.attempts if a.provider == name]
    assert [a.reason for a in failed] == reasons
    assert result.attempts[-1].provider == "extractive" and result.attempts[-1].outcome == "ok"
    assert "[1]" in result.generation.text


def test_a_retry_after_a_500_can_succeed(redis_client: redis.Redis) -> None:
    with scripted_llm(["500", "ok"]) as llm:
        chain, name = _chain(redis_client, llm.base_url)
        result = chain.run([name], _request, deadline=time.monotonic() + 5.0)
    assert result.provider.name == name and result.generation.text == ANSWER
    assert [a.outcome for a in result.attempts] == ["error", "ok"]


def test_streaming_relays_tokens_and_a_truncated_stream_is_voided(redis_client: redis.Redis) -> None:
    with scripted_llm(["truncated"]) as llm:
        chain, name = _chain(redis_client, llm.base_url, stream=True)
        tokens: list[str] = []
        resets: list[str] = []
        result = chain.run([name], _request, time.monotonic() + 5.0, tokens.append, resets.append)
    assert resets == ["truncated_stream"]  # the client is told to drop the partial answer
    assert result.provider.name == "extractive"
    assert "".join(tokens).endswith(result.generation.text)

    with scripted_llm(["ok"]) as llm:
        chain, name = _chain(redis_client, llm.base_url, stream=True)
        tokens = []
        result = chain.run([name], _request, time.monotonic() + 5.0, tokens.append)
    assert "".join(tokens) == ANSWER == result.generation.text


def test_breaker_opens_after_repeated_failures_and_half_opens_later(redis_client: redis.Redis) -> None:
    with scripted_llm(["500", "500", "500", "ok"]) as llm:
        chain, name = _chain(redis_client, llm.base_url, failures=2, reset=0.5)
        breaker = chain.breaker
        first = chain.run([name], _request, time.monotonic() + 5.0)  # two 500s: the breaker opens
        assert [a.reason for a in first.attempts[:2]] == ["http_500", "http_500"]
        assert breaker.state(name) == OPEN
        calls = len(llm.requests)
        blocked = chain.run([name], _request, time.monotonic() + 5.0)
        assert blocked.attempts[0].outcome == "breaker_open" and len(llm.requests) == calls  # not called

        time.sleep(0.6)
        assert breaker.state(name) == HALF_OPEN
        trial = chain.run([name], _request, time.monotonic() + 5.0)  # one trial: a 500, open again
        assert trial.attempts[0].reason == "http_500" and breaker.state(name) == OPEN

        time.sleep(0.6)
        healed = chain.run([name], _request, time.monotonic() + 5.0)  # the next trial succeeds: closed
        assert healed.provider.name == name and breaker.state(name) == CLOSED


def test_breaker_state_is_shared_through_redis(redis_client: redis.Redis) -> None:
    name = f"shared-{uuid.uuid4().hex[:6]}"
    one = Breaker(redis_client, BreakerConfig(failure_threshold=1, reset_after_s=0.3))
    two = Breaker(redis_client, BreakerConfig(failure_threshold=1, reset_after_s=0.3))
    one.failure(name)
    assert two.state(name) == OPEN and not two.allow(name)
    time.sleep(0.35)
    assert two.allow(name)  # the half-open trial goes to one caller only
    assert not one.allow(name)


def test_a_hanging_provider_costs_one_attempt_deadline_and_opens_its_breaker(redis_client: redis.Redis) -> None:
    """With a 30 s budget and a server that never answers in time, each query loses only the
    link's 0.3 s attempt deadline, and concurrent timeouts open the breaker as they happen."""
    with scripted_llm(["timeout"], sleep_s=10.0) as llm:
        chain, name = _chain(redis_client, llm.base_url, link=LinkPolicy(attempt_timeout_s=0.3), failures=3)
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(lambda _: chain.run([name], _request, time.monotonic() + 30), range(4)))
        assert all(r.provider.name == "extractive" for r in results)
        timed_out = [a for r in results for a in r.attempts if a.reason == "timeout"]
        assert timed_out and all(a.ms < 3000 for a in timed_out)  # cut at the deadline, not the server's 10 s
        assert chain.breaker.state(name) == OPEN
        after = chain.run([name], _request, time.monotonic() + 30)
        assert after.attempts[0].outcome == "breaker_open"


def test_a_full_bulkhead_skips_the_link_instead_of_queueing(redis_client: redis.Redis) -> None:
    with scripted_llm(["timeout"], sleep_s=1.0) as llm:
        chain, name = _chain(redis_client, llm.base_url, link=LinkPolicy(attempt_timeout_s=5, max_in_flight=1))
        with ThreadPoolExecutor(max_workers=1) as pool:
            busy = pool.submit(chain.run, [name], _request, time.monotonic() + 10)
            while not llm.requests:  # the one slot is taken by a call the server holds for 1 s
                time.sleep(0.01)
            skipped = chain.run([name], _request, time.monotonic() + 10)
            busy.result()
    assert skipped.attempts[0].reason == "bulkhead_full" and skipped.provider.name == "extractive"
    # the second query never called the provider: its one attempt there is the skip
    assert [a.outcome for a in skipped.attempts if a.provider == name] == ["skipped"]


def test_a_providers_first_answer_in_the_process_is_marked_cold(redis_client: redis.Redis) -> None:
    with scripted_llm(["ok"]) as llm:
        chain, name = _chain(redis_client, llm.base_url)
        first = chain.run([name], _request, time.monotonic() + 10)
        again = chain.run([name], _request, time.monotonic() + 10)
    assert [a.cold for a in first.attempts] == [True] and [a.cold for a in again.attempts] == [False]
