"""POST /v1/query: answer a question through QueryWorkflow; /v1/query/stream: the same as SSE.

The stream's first event (`sources`) is sent once retrieval and context packing are done, before
generation ends; `token` events follow as the generation step publishes them to the request's
Redis stream; `done` carries the whole answer (citations, degradations, timings).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from typing import Annotated

import redis
from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from opentelemetry import trace
from temporalio.client import Client

from api.deps import QueryCaller, QuestionRedactorDep, RedisDep, SettingsDep, TemporalDep
from api.errors import correlation_id, request_id
from api.schemas import QueryAnswer, QueryBody
from app.query import build_query, run_query
from contracts.query import QueryFilters, QueryInput, QueryOutput
from ingestion.redact import Redactor
from keel.config import Settings
from keel.errors import JsonInvalid, KeelError
from observability.tracing import current_trace_id
from stores import query_state
from stores.streams import read_events

router = APIRouter(prefix="/v1/query", tags=["query"])


@dataclass
class Caller:
    """Who asks, and the clients a query needs: the two endpoints take the same."""

    settings: Settings
    temporal: Client
    redis: redis.Redis
    tenant: str
    groups: list[str]
    redactor: Redactor | None


def _caller(
    settings: SettingsDep, temporal: TemporalDep, r: RedisDep, principal: QueryCaller, redactor: QuestionRedactorDep
) -> Caller:
    return Caller(settings, temporal, r, principal.tenant, list(principal.groups), redactor)


CallerDep = Annotated[Caller, Depends(_caller)]


async def _input(body: QueryBody, request: Request, who: Caller, stream: bool) -> QueryInput:
    """The checked workflow input; its tenant check reads Redis, so it runs in a thread."""
    filters = QueryFilters(**body.filters.model_dump()) if body.filters else None
    return await asyncio.to_thread(
        build_query,
        who.settings,
        who.redis,
        request_id(request),
        who.tenant,
        who.groups,
        body.question,
        filters,
        mode=body.mode,
        rerank=body.rerank,
        json_schema=body.json_schema,
        max_output_tokens=body.max_output_tokens,
        route=body.route,
        stream=stream,
        redactor=who.redactor,
    )


def _answer(out: QueryOutput, trace_id: str, correlation: str) -> QueryAnswer:
    data = asdict(out)
    data.pop("json_error", None)
    return QueryAnswer(**data, trace_id=trace_id, correlation_id=correlation or None)


@router.post("", response_model=QueryAnswer)
async def query(body: QueryBody, request: Request, who: CallerDep) -> QueryAnswer:
    inp = await _input(body, request, who, stream=False)
    try:
        out = await run_query(who.temporal, who.settings, inp)
    finally:
        await asyncio.to_thread(query_state.drop, who.redis, inp.tenant, inp.request_id)
    annotate(out, inp)
    if out.json_error is not None:
        raise JsonInvalid(f"the answer is not valid JSON for the schema: {out.json_error}")
    return _answer(out, current_trace_id(), correlation_id(request))


@router.post("/stream")
async def query_stream(body: QueryBody, request: Request, who: CallerDep) -> StreamingResponse:
    inp = await _input(body, request, who, stream=True)
    trace_id = current_trace_id()

    async def events() -> AsyncIterator[str]:
        task = asyncio.create_task(run_query(who.temporal, who.settings, inp))
        last = "0"
        try:
            while True:
                batch = await asyncio.to_thread(_read, who.redis, inp, last)
                for eid, event, data in batch:
                    last = eid
                    yield _sse(event, data)
                if task.done() and not batch:
                    break
        finally:  # the client may go away mid-stream: the state goes once the query is over
            loop = asyncio.get_running_loop()
            task.add_done_callback(
                lambda _: loop.run_in_executor(None, query_state.drop, who.redis, inp.tenant, inp.request_id)
            )
        try:
            out = task.result()
        except KeelError as exc:
            yield _sse("error", {"code": exc.code, "message": exc.message, "request_id": inp.request_id})
            return
        if out.json_error is not None:
            err = {"code": "json_invalid", "message": out.json_error, "request_id": inp.request_id}
            yield _sse("error", err)
            return
        yield _sse("done", _answer(out, trace_id, correlation_id(request)).model_dump())

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "X-Request-ID": inp.request_id}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


def annotate(out: QueryOutput, inp: QueryInput) -> None:
    """What the answer was made of, on the request's span: the trace says why an answer is as it is."""
    span = trace.get_current_span()
    span.set_attributes(
        {
            "keel.tenant": inp.tenant,
            "keel.request_id": inp.request_id,
            "keel.prompt_id": out.prompt_id,
            "keel.prompt_hash": out.prompt_hash,
            "keel.provider": out.provider,
            "keel.model": out.model,
            "keel.route": out.route,
            "keel.tokens_in": out.tokens_in,
            "keel.tokens_out": out.tokens_out,
            "keel.cost_usd": out.cost_usd,
            "keel.embedding_version": out.embedding_version,
            "keel.degradations": out.degradations,
            "keel.citations": len(out.citations),
            "keel.supported_rate": out.supported_rate,
            **{f"keel.question_pii.{k}": v for k, v in inp.question_pii.items()},
            **{f"keel.ms.{k}": v for k, v in out.timings_ms.items()},
        }
    )


def _read(r: redis.Redis, inp: QueryInput, last: str) -> list[tuple[str, str, object]]:
    return list(read_events(r, inp.tenant, inp.request_id, last, block_ms=200))


def _sse(event: str, data: object) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"
