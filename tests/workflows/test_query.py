"""QueryWorkflow end to end on the real stack: grounded answers, degradations, tenancy, bad input."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client

from app.query import UnknownTenant, build_query, run_query
from contracts.query import QueryFilters, QueryOutput
from keel.config import Settings
from keel.errors import BadInput, RetrievalUnavailable
from observability import metrics
from pipelines.deps import Deps
from stores.keys import TENANTS_KEY, query_candidates_key
from temporal.client import connect
from tests.conftest import SAMPLES
from tests.helpers import ingest

pytestmark = [pytest.mark.stack, pytest.mark.usefixtures("worker")]


async def _ask(
    client: Client,
    settings: Settings,
    r: redis.Redis,
    tenant: str,
    question: str,
    groups: list[str] | None = None,
    filters: QueryFilters | None = None,
    json_schema: dict[str, Any] | None = None,
) -> QueryOutput:
    inp = build_query(settings, r, uuid.uuid4().hex, tenant, groups or [], question, filters, json_schema=json_schema)
    return await run_query(client, settings, inp)


@pytest.fixture
async def sampled(client: Client, settings: Settings, redis_client: redis.Redis, tenant: str) -> str:
    counters, _ = await ingest(client, settings, redis_client, [SAMPLES], tenant)
    assert counters.ingested == 6
    return tenant


async def test_answer_cites_the_passage_that_holds_it(
    client: Client, settings: Settings, redis_client: redis.Redis, sampled: str
) -> None:
    out = await _ask(client, settings, redis_client, sampled, "How do I retry failed files?")
    assert not out.no_sources and not out.clarifying
    assert out.citations, out.answer
    assert any(c.source.endswith("faq.txt") for c in out.citations)
    assert "keel ingest" in out.answer.lower()
    assert out.provider == "extractive" and out.prompt_id == "answer.v2" and len(out.prompt_hash) == 16
    assert out.embedding_version.startswith("all-MiniLM-L6-v2")
    assert out.supported_rate == 1.0  # extractive sentences are copied from the passage they cite
    assert set(out.timings_ms) == {"retrieve", "rerank", "hop", "context", "generate", "validate"}
    assert out.degradations == []
    assert out.second_hop is not None and out.second_hop.names > 0  # the top passages name things


async def test_a_client_without_workers_starts_queries_the_usual_way(
    settings: Settings, redis_client: redis.Redis, sampled: str, spans: InMemorySpanExporter
) -> None:
    """The CLI or an API-only process has no worker to take the first task: no eager start, same answer."""
    apart = await connect(settings)
    with trace.get_tracer("test").start_as_current_span("ask from apart") as span:
        out = await _ask(apart, settings, redis_client, sampled, "How do I retry failed files?")
    assert out.citations and not out.degradations
    assert isinstance(span, ReadableSpan) and (span.attributes or {}).get("keel.eager_start") is False


async def test_filters_limit_the_sources(
    client: Client, settings: Settings, redis_client: redis.Redis, sampled: str
) -> None:
    only = str(SAMPLES / "security.html")
    out = await _ask(
        client, settings, redis_client, sampled, "How do I retry failed files?", filters=QueryFilters(sources=[only])
    )
    assert {c.source for c in out.citations} <= {only}


async def test_other_tenants_and_groups_never_leak(
    client: Client, settings: Settings, redis_client: redis.Redis, sampled: str, tmp_path: Path
) -> None:
    secret = tmp_path / "payroll.md"
    secret.write_text("# Payroll\n\nThe quarterly bonus pool for the platypus team is forty thousand euros.\n")
    await ingest(client, settings, redis_client, [secret], sampled, groups=["finance"])
    question = "What is the bonus pool for the platypus team?"

    outsider = await _ask(client, settings, redis_client, sampled, question)  # same tenant, no group
    assert all(not c.source.endswith("payroll.md") for c in outsider.citations)
    insider = await _ask(client, settings, redis_client, sampled, question, groups=["finance"])
    assert any(c.source.endswith("payroll.md") for c in insider.citations)

    other = f"t{uuid.uuid4().hex[:10]}"
    redis_client.sadd(TENANTS_KEY, other)  # a known tenant with no documents of its own
    out = await _ask(client, settings, redis_client, other, question, groups=["finance"])
    assert out.no_sources and out.citations == [] and "No sources" in out.answer


async def _ask_out_of_time(client: Client, settings: Settings, r: redis.Redis, tenant: str, step: str) -> QueryOutput:
    """The sample question with `step`'s budget at zero."""
    settings.query_budgets_ms = {step: 0}
    try:
        return await _ask(client, settings, r, tenant, "How do I retry failed files?")
    finally:
        settings.query_budgets_ms = {}


async def test_rerank_past_its_deadline_is_skipped_not_fatal(
    client: Client, settings: Settings, redis_client: redis.Redis, sampled: str
) -> None:
    out = await _ask_out_of_time(client, settings, redis_client, sampled, "rerank")
    assert "rerank_skipped" in out.degradations
    assert out.citations  # answered from the retrieval order


async def test_a_second_hop_past_its_deadline_is_skipped_and_said(
    client: Client, settings: Settings, redis_client: redis.Redis, sampled: str
) -> None:
    out = await _ask_out_of_time(client, settings, redis_client, sampled, "hop")
    assert "second_hop_skipped" in out.degradations and out.second_hop is None
    assert out.citations and "hop" not in out.timings_ms  # answered from the first hop's ranking


async def test_unrelated_question_gets_a_clarifying_answer(
    client: Client, settings: Settings, redis_client: redis.Redis, sampled: str
) -> None:
    out = await _ask(client, settings, redis_client, sampled, "xylophone zebra quasar")
    assert out.clarifying and out.citations == []


async def test_json_answers_validate_against_the_schema(
    client: Client, settings: Settings, redis_client: redis.Redis, sampled: str
) -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}, "sources": {"type": "array", "items": {"type": "integer"}}},
        "required": ["answer", "sources"],
    }
    out = await _ask(client, settings, redis_client, sampled, "How do I retry failed files?", json_schema=schema)
    assert out.json_error is None and out.json_value["sources"]
    impossible = {"type": "object", "required": ["price"], "properties": {"price": {"type": "number"}}}
    bad = await _ask(client, settings, redis_client, sampled, "How do I retry failed files?", json_schema=impossible)
    assert bad.json_error and "price" in bad.json_error


def test_bad_query_input_is_refused(settings: Settings, redis_client: redis.Redis, tenant: str) -> None:
    redis_client.sadd(TENANTS_KEY, tenant)
    cases: list[tuple[dict[str, object], str]] = [
        ({"question": "  "}, "empty_question"),
        ({"question": "x" * (settings.max_question_chars + 1)}, "question_too_long"),
        ({"question": "q", "filters": QueryFilters(doc_ids=[""])}, "invalid_filter"),
        ({"question": "q", "filters": QueryFilters(ingested_after=2.0, ingested_before=1.0)}, "invalid_filter"),
        ({"question": "q", "mode": "psychic"}, "bad_input"),
        ({"question": "q", "route": "platinum"}, "bad_input"),
        ({"question": "q", "json_schema": {"type": "nonsense"}}, "invalid_json_schema"),
        ({"question": "q", "tenant": "Bad Tenant!"}, "invalid_tenant"),
    ]
    for case, code in cases:
        args = dict(case)
        question = str(args.pop("question"))
        who = str(args.pop("tenant", tenant))
        filters = args.pop("filters", None)
        with pytest.raises(BadInput) as err:
            build_query(settings, redis_client, "r1", who, [], question, filters, **args)  # type: ignore[arg-type]
        assert err.value.code == code, case
    with pytest.raises(UnknownTenant):
        build_query(settings, redis_client, "r1", f"t{uuid.uuid4().hex[:10]}", [], "q")


async def test_a_step_past_its_deadline_is_cancelled_not_left_running(
    client: Client, settings: Settings, redis_client: redis.Redis, deps: Deps, sampled: str
) -> None:
    """Retrieval stalls (every query embedding slot is held): at its deadline the activity that
    runs it (`query.find`, retrieve to context) is cancelled in its thread (counted) and never
    writes its candidates late; the caller gets a 503, not "no sources"."""
    embedder = deps.indexes.active(sampled).embedder
    held = 0
    while embedder.query_slots.acquire(blocking=False):
        held += 1
    assert held
    cancelled = metrics.CANCELLED_STEPS.labels("query.find")
    before = cancelled._value.get()
    settings.query_budgets_ms = {"retrieve": 400}
    inp = build_query(settings, redis_client, uuid.uuid4().hex, sampled, [], "How do I retry failed files?")
    try:
        with pytest.raises(RetrievalUnavailable):
            await run_query(client, settings, inp)
    finally:
        settings.query_budgets_ms = {}
        for _ in range(held):
            embedder.query_slots.release()
    await asyncio.sleep(1.0)  # a step left running would finish now that the slots are free
    assert cancelled._value.get() > before
    assert not redis_client.exists(query_candidates_key(sampled, inp.request_id))
