"""POST /v1/query and /v1/query/stream end to end: answers, SSE order, JSON errors, one trace."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import redis
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from api.main import create_app
from gateway.admission import Admission
from gateway.keys import QUERY, KeyStore
from gateway.limits import Limits
from keel.config import Settings, get_settings
from tests.api.conftest import Auth, expect_error, stream_events

pytestmark = [pytest.mark.stack, pytest.mark.usefixtures("worker")]


async def test_query_answers_with_citations_timings_and_one_trace(
    api: httpx.AsyncClient, sampled: str, spans: InMemorySpanExporter, auth: Auth
) -> None:
    resp = await api.post("/v1/query", json={"question": "How do I retry failed files?"}, headers=auth(sampled))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["request_id"] == resp.headers["X-Request-ID"]
    assert body["citations"] and body["citations"][0]["snippet"] and body["citations"][0]["doc_id"]
    # every step's time, and what the cache lookups (exact at the edge, semantic in retrieve) added
    assert set(body["timings_ms"]) == {"retrieve", "rerank", "hop", "context", "generate", "validate", "cache"}
    assert body["cache"] == "miss" and body["timings_ms"]["cache"] > 0
    assert body["second_hop"]["names"] > 0 and body["second_hop"]["linked"] >= 0  # what the hop did, said
    assert len(body["trace_id"]) == 32

    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    provider.force_flush()
    in_trace = [s for s in spans.get_finished_spans() if f"{s.context.trace_id:032x}" == body["trace_id"]]
    names = {s.name for s in in_trace}
    assert any(n.startswith("POST /v1/query") for n in names), names
    # The app shares the workers' client (as in infra.server), so the workflow started eagerly.
    request_span = next(s for s in in_trace if s.name == "POST /v1/query")
    assert (request_span.attributes or {}).get("keel.eager_start") is True
    assert "RunWorkflow:Query" in names
    assert {"RunActivity:query.find", "RunActivity:query.answer"} <= names, names
    for step in ("retrieve", "rerank", "hop", "context", "generate", "validate"):  # each step its span, in them
        assert f"query.{step}" in names, names


async def test_stream_sends_sources_before_tokens_and_done_last(
    api: httpx.AsyncClient, sampled: str, auth: Auth
) -> None:
    events = await stream_events(api, auth(sampled), "How do I retry failed files?")
    kinds = [e for e, _ in events]
    assert kinds[0] == "sources" and kinds[-1] == "done" and "token" in kinds
    assert kinds.index("sources") < kinds.index("token")
    streamed = "".join(d for e, d in events if e == "token")
    done = events[-1][1]
    assert done["citations"] and streamed.strip() and done["answer"].startswith(streamed.split(" [")[0][:20])


async def test_bad_query_input_is_a_json_error_with_a_code(
    api: httpx.AsyncClient, settings: Settings, sampled: str, auth: Auth
) -> None:
    h = auth(sampled)
    expect_error(await api.post("/v1/query", json={"question": " "}, headers=h), 400, "empty_question")
    long_q = "x" * (settings.max_question_chars + 1)
    expect_error(await api.post("/v1/query", json={"question": long_q}, headers=h), 413, "question_too_long")
    bad_filter = {"question": "q", "filters": {"doc_ids": [""]}}
    expect_error(await api.post("/v1/query", json=bad_filter, headers=h), 400, "invalid_filter")
    expect_error(
        await api.post("/v1/query", json={"question": "q"}, headers=auth("nobody-here")),
        404,
        "unknown_tenant",
    )
    expect_error(await api.post("/v1/query", json={"nope": 1}, headers=h), 422, "invalid_request")


async def test_json_answer_that_cannot_match_the_schema_is_a_clear_error(
    api: httpx.AsyncClient, sampled: str, auth: Auth
) -> None:
    schema = {"type": "object", "required": ["price"], "properties": {"price": {"type": "number"}}}
    resp = await api.post(
        "/v1/query",
        json={"question": "How do I retry failed files?", "json_schema": schema},
        headers=auth(sampled),
    )
    expect_error(resp, 422, "json_invalid")


async def test_a_lost_retrieval_is_a_503_not_no_sources(
    api: httpx.AsyncClient, settings: Settings, sampled: str, auth: Auth
) -> None:
    settings.query_budgets_ms = {"retrieve": 0}  # retrieval cannot finish in time: as if Qdrant hung
    try:
        resp = await api.post("/v1/query", json={"question": "How do I retry failed files?"}, headers=auth(sampled))
    finally:
        settings.query_budgets_ms = {}
    expect_error(resp, 503, "retrieval_unavailable")
    assert int(resp.headers["Retry-After"]) >= 1


async def test_past_its_capacity_the_api_refuses_with_retry_after(
    api: httpx.AsyncClient, settings: Settings, sampled: str, auth: Auth
) -> None:
    settings.query_max_in_flight, settings.query_queue = 1, 0
    try:
        key = auth(sampled)
        ask = [api.post("/v1/query", json={"question": "How do I retry failed files?"}, headers=key) for _ in range(4)]
        answers = await asyncio.gather(*ask)
    finally:
        settings.query_max_in_flight, settings.query_queue = 0, 16
    codes = sorted(r.status_code for r in answers)
    assert codes[0] == 200 and 503 in codes, codes
    refused = next(r for r in answers if r.status_code == 503)
    expect_error(refused, 503, "overloaded")
    assert refused.headers["Retry-After"] == "1"


async def test_a_key_over_its_rate_is_a_429_with_when_to_return(
    api: httpx.AsyncClient, redis_client: redis.Redis, sampled: str
) -> None:
    _, token = KeyStore(redis_client).create(tenant=sampled, roles=[QUERY], limits=Limits(rpm=2))
    key = {"Authorization": f"Bearer {token}"}
    first = await api.post("/v1/query", json={"question": "How do I retry failed files?"}, headers=key)
    assert first.status_code == 200 and '"key-rpm";q=2;w=60' in first.headers["RateLimit-Policy"]
    second = await api.post("/v1/query", json={"question": "How do I retry failed files?"}, headers=key)
    expect_error(second, 429, "rate_limited")
    assert 1 <= int(second.headers["Retry-After"]) <= 30 and "RateLimit-Policy" in second.headers
    stream = await api.post("/v1/query/stream", json={"question": "How do I retry failed files?"}, headers=key)
    expect_error(stream, 429, "rate_limited")  # one gate for every route that spends tokens


async def test_a_full_process_refuses_a_query_before_reading_it(settings: Settings, redis_client: redis.Redis) -> None:
    """At capacity, a query is refused at the door, before any middleware: no key check, no body read (this
    one has neither a key nor JSON), so under overload a refusal costs next to nothing."""
    app = create_app()
    app.dependency_overrides[get_settings] = lambda: settings
    app.state.redis = redis_client
    admission = app.state.admission = Admission(limit=1, queue=0, wait_s=1.0)
    taken = await admission.acquire()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://keel") as http:
            resp = await http.post("/v1/query", content=b"not json")
            assert (await http.get("/v1/jobs/some-job")).status_code == 401  # other routes are not shed
    finally:
        admission.release(taken)
    expect_error(resp, 503, "overloaded")
    assert resp.headers["Retry-After"] == "1" and admission.refused == 1
