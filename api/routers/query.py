"""POST /v1/query: answer a question through QueryWorkflow; /v1/query/stream: the same as SSE.

The stream's first event (`sources`) is sent once retrieval and context packing are done, before
generation ends; `token` events follow as the generation step publishes them to the request's
Redis stream; `done` carries the whole answer (citations, degradations, timings).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, replace
from typing import Annotated, Any

import redis
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse
from opentelemetry import trace

from api.deps import (
    AdmissionDep,
    ExactCacheDep,
    LimiterDep,
    QueryCaller,
    QuestionRedactorDep,
    RedisDep,
    SettingsDep,
    TemporalDep,
    edge_pool,
    on_edge,
    pii_vault_of,
    semantic_cache_of,
    semantic_handover_of,
)
from api.errors import correlation_id, request_id
from api.metrics import record_answer
from api.schemas import QueryAnswer, QueryBody
from app import conversations
from app.conversations import Thread, with_history
from app.query import Passage, build_query, passages_of, protect_question, run_query
from app.query_edge import Caller, Looked
from contracts.query import QueryFilters, QueryInput, QueryOutput
from gateway.limits import Ticket
from keel.errors import JsonInvalid, KeelError
from observability.tracing import current_trace_id
from stores import query_state
from stores.streams import read_events

router = APIRouter(prefix="/v1/query", tags=["query"])
log = logging.getLogger("keel.query")


def _caller(
    settings: SettingsDep,
    temporal: TemporalDep,
    r: RedisDep,
    principal: QueryCaller,
    redactor: QuestionRedactorDep,
    admission: AdmissionDep,
    limiter: LimiterDep,
    cache: ExactCacheDep,
    request: Request,
) -> Caller:
    config = getattr(request.app.state, "answer_config", "")
    semantic = semantic_cache_of(request.app, settings) if cache is not None else None
    handover = semantic_handover_of(request.app, settings) if cache is not None else None
    indexes = request.app.state.indexes
    vault = pii_vault_of(request.app, settings) if redactor is not None else None
    return Caller(
        settings,
        temporal,
        r,
        principal,
        redactor,
        admission,
        limiter,
        cache,
        config,
        semantic,
        indexes,
        vault,
        handover=handover,
    )


CallerDep = Annotated[Caller, Depends(_caller)]


async def _input(
    body: QueryBody, request: Request, who: Caller, stream: bool, thread: Thread | None = None
) -> QueryInput:
    """The checked workflow input, its question not yet redacted (`_redacted`), a stateless
    client's follow-up made standalone from the history it sent; its tenant check reads Redis, so
    it runs in a thread."""
    filters = QueryFilters(**body.filters.model_dump()) if body.filters else None
    inp = await asyncio.to_thread(
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
        key_id=who.principal.key_id,
    )
    return with_history(inp, thread.history) if thread is not None and thread.history else inp


async def _run(who: Caller, inp: QueryInput, thread: Thread | None) -> QueryOutput:
    """The query's workflow: its own, or the next turn of a durable conversation."""
    if thread is not None and thread.conversation_id:
        return await conversations.take_turn(
            who.temporal, who.settings, who.redis, who.principal, thread.conversation_id, inp
        )
    out = await run_query(who.temporal, who.settings, inp)
    out.rewrite = inp.rewrite  # a stateless client's follow-up, rewritten here at the edge
    return out


async def _redacted(inp: QueryInput, who: Caller) -> tuple[QueryInput, dict[str, str]]:
    """The input with its question protected, and (with pseudonyms) the question's own tokens ->
    names, kept at the edge for this request to reveal them in its answer."""
    if who.redactor is None:
        return inp, {}
    return await asyncio.to_thread(protect_question, inp, who.redactor, who.vault, who.redis, who.settings)


def _answer(out: QueryOutput, trace_id: str, correlation: str) -> QueryAnswer:
    data = asdict(out)
    data.pop("json_error", None)
    # The question a semantic hit matched was another caller's, perhaps another user's words:
    # kept for feedback and the trace, never shown. `cache: "semantic"` says the answer was reused.
    data.pop("cached_question", None)
    return QueryAnswer(**data, trace_id=trace_id, correlation_id=correlation or None)


@router.post("", response_model=QueryAnswer)
async def query(body: QueryBody, request: Request, response: Response, who: CallerDep) -> QueryAnswer:
    answer, headers = await answered(body, request, who)
    response.headers.update(headers)
    return answer


async def answered(
    body: QueryBody, request: Request, who: Caller, thread: Thread | None = None
) -> tuple[QueryAnswer, dict[str, str]]:
    """One question answered at the edge: the answer, and the headers the limits add. Every route
    that answers a question (this one, chat completions, a conversation's turn) goes through here;
    `thread` joins it to a conversation."""
    # Cheapest refusal first: a full process says so in microseconds, before any Redis call or
    # redaction; then the limits (one Redis script); then the question is checked and redacted.
    async with who.admission.slot(who.tenant):
        ticket = await on_edge(
            request, who.admit, request_id(request), body.question, body.max_output_tokens, body.json_schema
        )
        out: QueryOutput | None = None
        inp: QueryInput | None = None
        started = time.perf_counter()
        looked: Looked | None = None
        tokens: dict[str, str] = {}
        try:
            checked = await _input(body, request, who, stream=False, thread=thread)
            if thread is not None and thread.conversation_id:
                # The turn is made standalone in its workflow, so no exact entry can be named here.
                looked = Looked(inp=who.snippet_scoped(checked))
            else:
                looked = await on_edge(request, who.cached, checked, body.cache)
            inp, out = looked.inp, looked.answer
            if out is None:
                inp, tokens = await _redacted(inp, who)
                out = await _run(who, inp, thread)
                if looked.digest:  # what the exact lookup added to this miss, beside the workflow's
                    out.timings_ms["cache"] = round(out.timings_ms.get("cache", 0.0) + looked.ms, 3)
        finally:
            await on_edge(request, who.settle, ticket, out)
            # On the edge's threads, after the answer: the caller does not wait for it.
            pool, ms = edge_pool(request.app), (time.perf_counter() - started) * 1000
            asyncio.get_running_loop().run_in_executor(pool, who.wrap_up, looked, inp, out, current_trace_id(), ms)
    assert inp is not None  # set whenever an answer came back
    record_answer(inp.tenant, out, time.perf_counter() - started)
    annotate(out, inp)
    if who.vault is not None:  # pseudonyms back to names, after the caches kept the answer with its tokens
        out = await on_edge(request, who.revealed, out, tokens)
    if out.json_error is not None:
        raise JsonInvalid(f"the answer is not valid JSON for the schema: {out.json_error}")
    return _answer(out, current_trace_id(), correlation_id(request)), ticket.headers


async def searched(body: QueryBody, request: Request, who: Caller, limit: int) -> list[Passage]:
    """The passages retrieval and re-scoring rank best for the question, with the same admission,
    limits, checks and redaction as an answer, and no generation: the MCP `search` tool."""
    async with who.admission.slot(who.tenant):
        ticket = await on_edge(request, who.admit, request_id(request), body.question, 1, None)
        out: QueryOutput | None = None
        inp: QueryInput | None = None
        try:
            protected, tokens = await _redacted(await _input(body, request, who, stream=False), who)
            inp = replace(protected, answer=False)
            out = await run_query(who.temporal, who.settings, inp)
            found = await on_edge(request, passages_of, who.redis, inp, out.ranking, limit)
            texts = await on_edge(request, _revealed_event, who, [p.text for p in found], tokens)
            return [replace(p, text=t) for p, t in zip(found, texts, strict=True)]
        finally:
            await on_edge(request, who.settle, ticket, out)
            if inp is not None:
                await on_edge(request, query_state.drop, who.redis, inp.tenant, inp.request_id)


@router.post("/stream")
async def query_stream(body: QueryBody, request: Request, who: CallerDep) -> StreamingResponse:
    events, headers = await streamed(body, request, who)
    return StreamingResponse(sse_of(events), media_type="text/event-stream", headers=headers)


async def sse_of(events: AsyncIterator[tuple[str, Any]]) -> AsyncIterator[str]:
    """The stream's events as server-sent events."""
    async for event, data in events:
        yield _sse(event, data)


async def streamed(
    body: QueryBody, request: Request, who: Caller, thread: Thread | None = None
) -> tuple[AsyncIterator[tuple[str, Any]], dict[str, str]]:
    """One question answered as a stream of (event, data): `sources`, `token`s, `reset`s, then
    `done` with the whole answer or `error`. Refusals raise before the stream starts."""
    taken_at = await who.admission.acquire(who.tenant)  # refusals here, as plain 429/503s, before the stream
    try:
        ticket = await on_edge(
            request, who.admit, request_id(request), body.question, body.max_output_tokens, body.json_schema
        )
    except Exception:  # refused (or Redis failed): the slot goes back
        who.admission.release(taken_at, who.tenant)
        raise
    try:
        checked = await _input(body, request, who, stream=True, thread=thread)
        protected, tokens = await _redacted(checked, who)
        inp = who.snippet_scoped(protected)
    except Exception:
        who.admission.release(taken_at, who.tenant)
        await on_edge(request, who.settle, ticket, None)
        raise
    trace_id = current_trace_id()
    task = asyncio.create_task(_run(who, inp, thread))
    loop = asyncio.get_running_loop()
    started = time.perf_counter()

    def finished(done: asyncio.Task[QueryOutput]) -> None:
        who.admission.release(taken_at, who.tenant)
        out = done.result() if not done.cancelled() and done.exception() is None else None
        if out is not None:
            record_answer(inp.tenant, out, time.perf_counter() - started)
        ms = (time.perf_counter() - started) * 1000
        loop.run_in_executor(edge_pool(request.app), _finish, who, inp, ticket, out, trace_id, ms)

    task.add_done_callback(finished)

    async def events() -> AsyncIterator[tuple[str, Any]]:
        last = "0"  # if the client goes away mid-stream, the query runs on and is settled when it ends
        while True:
            batch = await asyncio.to_thread(_read, who.redis, inp, last)
            for eid, event, data in batch:
                last = eid
                yield event, (await on_edge(request, _revealed_event, who, data, tokens) if who.vault else data)
            if task.done() and not batch:
                break
        try:
            out = task.result()
        except KeelError as exc:
            yield "error", {"code": exc.code, "message": exc.message, "request_id": inp.request_id}
            return
        if out.json_error is not None:
            yield "error", {"code": "json_invalid", "message": out.json_error, "request_id": inp.request_id}
            return
        if who.vault is not None:
            out = await on_edge(request, who.revealed, out, tokens)
        yield "done", _answer(out, trace_id, correlation_id(request)).model_dump()

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "X-Request-ID": inp.request_id}
    headers.update(ticket.headers)
    return events(), headers


def _revealed_event(who: Caller, data: Any, tokens: dict[str, str]) -> Any:
    """A streamed event's text with pseudonym tokens revealed: a token piece, or the strings of
    the sources event (a sentence is released whole, so a token never spans two events)."""
    if isinstance(data, str):
        return who.revealed_text(data, tokens)
    if isinstance(data, list):
        return [_revealed_event(who, item, tokens) for item in data]
    if isinstance(data, dict):
        return {k: _revealed_event(who, v, tokens) for k, v in data.items()}
    return data


def _finish(who: Caller, inp: QueryInput, ticket: Ticket, out: QueryOutput | None, trace_id: str, ms: float) -> None:
    """The query is over: settle its limits, record the answer and drop its working state."""
    try:
        who.settle(ticket, out)
        who.record(None, inp, out, trace_id, ms)
    finally:
        query_state.drop(who.redis, who.tenant, inp.request_id)


def annotate(out: QueryOutput, inp: QueryInput) -> None:
    """What the answer was made of, on the request's span: the trace says why an answer is as it is."""
    span = trace.get_current_span()
    span.set_attributes(
        {
            "keel.tenant": inp.tenant,
            "keel.request_id": inp.request_id,
            "keel.prompt_id": out.prompt_id,
            "keel.prompt_hash": out.prompt_hash,
            "keel.prompt_label": out.prompt_label,
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
            "keel.guard.flags": out.flags,
            **{f"keel.question_pii.{k}": v for k, v in inp.question_pii.items()},
            **{f"keel.ms.{k}": v for k, v in out.timings_ms.items()},
        }
    )


def _read(r: redis.Redis, inp: QueryInput, last: str) -> list[tuple[str, str, object]]:
    return list(read_events(r, inp.tenant, inp.request_id, last, block_ms=200))


def _sse(event: str, data: object) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"
