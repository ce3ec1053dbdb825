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
from dataclasses import asdict, dataclass, replace
from typing import Annotated, Any

import redis
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse
from opentelemetry import trace
from temporalio.client import Client

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
    semantic_cache_of,
)
from api.errors import correlation_id, request_id
from api.metrics import record_answer
from api.schemas import QueryAnswer, QueryBody
from app.feedback import answer_record
from app.query import answer_scope, build_query, redact_question, reserve_tokens, retrieval_scope, run_query
from caches.entries import entry_digest
from caches.exact import ExactCache
from caches.semantic import SemanticCache
from contracts.query import QueryFilters, QueryInput, QueryOutput, query_output
from gateway.admission import Admission
from gateway.keys import Principal
from gateway.limits import Limiter, Ticket
from guardrails.pii import Redactor
from index.active import Indexes
from index.catalog import Catalog
from keel.config import Settings
from keel.errors import JsonInvalid, KeelError, RateLimited
from observability import metrics
from observability.tracing import current_trace_id
from stores import feedback, query_state
from stores.streams import read_events

router = APIRouter(prefix="/v1/query", tags=["query"])
log = logging.getLogger("keel.query")


@dataclass(kw_only=True)
class Looked:
    """The exact cache's lookup at the edge."""

    inp: QueryInput  # with its cache scopes set
    digest: str = ""  # the question's exact entry ("": the cache is off)
    answer: QueryOutput | None = None  # a hit
    ms: float = 0.0  # what a miss's lookup took
    generation: int = -1  # the tenant's, as the lookup read it (-1: not read)
    question: str = ""  # a hit's: the (redacted) question it was kept under


@dataclass
class Caller:
    """Who asks, and the clients a query needs: the two endpoints take the same."""

    settings: Settings
    temporal: Client
    redis: redis.Redis
    principal: Principal
    redactor: Redactor | None
    admission: Admission
    limiter: Limiter
    cache: ExactCache | None
    answer_config: str
    semantic: SemanticCache | None
    indexes: Indexes | None

    @property
    def tenant(self) -> str:
        return self.principal.tenant

    @property
    def groups(self) -> list[str]:
        return list(self.principal.groups)

    def admit(
        self, rid: str, question: str, max_output_tokens: int | None, json_schema: dict[str, Any] | None = None
    ) -> Ticket:
        """Within the key's and the tenant's limits? (one Redis round trip for the tenant's
        limits, one script for every check; run in a thread). The tokens reserved are counted
        from the question as sent: the redacted one is no longer."""
        p = self.principal
        scopes = self.limiter.scopes(p.key_id, p.limits, p.tenant)
        try:
            ticket = self.limiter.admit(
                rid, scopes, reserve_tokens(self.settings, question, max_output_tokens, json_schema)
            )
        except RateLimited as exc:
            metrics.LIMITER.labels(decision="refused", policy=exc.policy).inc()
            raise
        metrics.LIMITER.labels(decision="admitted", policy="-" if not ticket.scopes else "limited").inc()
        return ticket

    def cached(self, inp: QueryInput, wanted: bool) -> Looked:
        """The input with its cache scopes set (the semantic layer searches within one, the
        snippet layer within the other), the question's exact digest ("" with the cache off), the
        cached answer when the caller wants one and the cache holds one it may read, and the ms
        the lookup took. `inp` is not yet redacted: the digest is an HMAC, and no redaction is
        spent on a hit."""
        if self.cache is None:
            return Looked(inp=inp)
        started = time.perf_counter()
        scope = self.cache.scope(inp.tenant, inp.groups, answer_scope(inp, self.answer_config))
        inp = replace(self.snippet_scoped(inp), cache_scope=scope, cache_read=wanted)
        digest = entry_digest(scope, inp.question)
        generation, hit = self.cache.lookup(inp.tenant, inp.groups, digest) if wanted else (-1, None)
        metrics.CACHE.labels(layer="exact", outcome="hit" if hit else ("miss" if wanted else "skipped")).inc()
        if hit is None:
            return Looked(inp=inp, digest=digest, ms=(time.perf_counter() - started) * 1000, generation=generation)
        served = {  # what this request cost and took, not what the answer first did
            "request_id": inp.request_id,
            "cache": "exact",
            "timings_ms": {"cache": round((time.perf_counter() - started) * 1000, 3)},
            "tokens_in": 0,
            "tokens_out": 0,
            "cost_usd": 0.0,
        }
        return Looked(inp=inp, digest=digest, answer=query_output({**hit.answer, **served}), question=hit.question)

    def snippet_scoped(self, inp: QueryInput) -> QueryInput:
        """The input with its snippet scope set: what was found for the question in it before may
        stand in for retrieval and re-scoring (streams too, whose answers are generated anew)."""
        if self.cache is None:
            return inp
        scope = self.cache.scope(inp.tenant, inp.groups, retrieval_scope(inp, self.answer_config))
        return replace(inp, snippet_scope=scope)

    def paraphrased(self, inp: QueryInput, generation: int) -> tuple[QueryInput, QueryOutput | None, float]:
        """Where this process shares the workers' indexes: the semantic layer looked up here, on
        the redacted question, before any workflow starts. The question's embedding is left in
        the request's state for retrieval (embedded once either way), and the workflow does not
        look again. `generation` is the tenant's as the exact lookup read it (-1: read it here).
        Returns the input to run, the cached answer on a hit, and the ms it took."""
        if self.semantic is None or self.indexes is None or not inp.cache_scope or not inp.cache_read:
            return inp, None, 0.0
        started = time.perf_counter()
        if generation < 0:
            generation = Catalog(self.redis).generation(inp.tenant)
        if generation <= 0:
            return inp, None, 0.0
        index = self.indexes.open(inp.tenant)
        vector = index.embedder.embed_query(inp.question)
        embedded = time.perf_counter()
        hit = self.semantic.lookup(
            index, inp.tenant, inp.groups, inp.cache_scope, generation, inp.question, vector, count_miss=False
        )
        if hit is None:  # the miss is counted after the answer (`wrap_up`), off the caller's time
            query_state.save_vector(self.redis, inp.tenant, inp.request_id, vector)
            lookup_ms = (time.perf_counter() - embedded) * 1000  # the embedding is retrieval's, not the cache's
            return replace(inp, vector_ready=True, cache_read=False), None, lookup_ms
        served = {
            "request_id": inp.request_id,
            "cache": "semantic",
            "cached_question": hit.question,
            "timings_ms": {"cache": round((time.perf_counter() - started) * 1000, 3)},
            "tokens_in": 0,
            "tokens_out": 0,
            "cost_usd": 0.0,
            "question_pii": inp.question_pii,
        }
        return inp, query_output({**hit.hit.answer, **served}), 0.0

    def wrap_up(
        self, looked: Looked | None, inp: QueryInput | None, out: QueryOutput | None, trace_id: str, ms: float
    ) -> None:
        """After the answer is sent: record what it was made of (its feedback names it), keep it
        if it is whole (the exact entry under the question as asked, the semantic one under the
        redacted question and its embedding, which retrieval left in the request's state), then
        drop that state."""
        if inp is None or looked is None:
            return
        digest = looked.digest
        try:
            self.record(looked, inp, out, trace_id, ms)
            if out is not None and out.cache == "semantic":
                metrics.CACHE.labels(layer="semantic", outcome="hit").inc()
            elif inp.vector_ready and self.semantic is not None:  # looked at the edge, and missed
                self.semantic.entries.count(inp.tenant, "semantic_miss")
            if self.cache is not None and digest and out is not None and cacheable(out):
                answer = asdict(out)
                for transient in (
                    "request_id",
                    "timings_ms",
                    "attempts",
                    "question_pii",
                    "ranking",
                    "json_error",
                    "first_token_ms",
                ):
                    answer.pop(transient, None)
                self.cache.put(inp.tenant, digest, out.generation, inp.question, answer)
                vector = query_state.question_vector(self.redis, inp.tenant, inp.request_id)
                if self.semantic is not None and vector is not None and self.indexes is not None:
                    index = self.indexes.by_version(inp.tenant, out.embedding_version)
                    self.semantic.remember(
                        index, inp.tenant, inp.cache_scope, out.generation, inp.question, vector, answer
                    )
        finally:
            query_state.drop(self.redis, inp.tenant, inp.request_id)

    def record(self, looked: Looked | None, inp: QueryInput, out: QueryOutput | None, trace_id: str, ms: float) -> None:
        if out is None:
            return
        record = answer_record(
            inp,
            out,
            key_id=self.principal.key_id,
            trace_id=trace_id,
            exact_digest=looked.digest if looked else "",
            served_question=looked.question if looked else "",
            at=time.time(),
            ms=round(ms, 2),
        )
        try:
            feedback.record(self.redis, inp.tenant, record)
        except redis.exceptions.RedisError as exc:  # the answer was sent; only its feedback is lost
            log.warning("answer %s not recorded (Redis: %s)", inp.request_id, exc)

    def settle(self, ticket: Ticket, out: QueryOutput | None) -> None:
        used, cost = (out.tokens_in + out.tokens_out, out.cost_usd) if out is not None else (0, 0.0)
        self.limiter.settle(ticket, used, cost)


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
    indexes = request.app.state.indexes
    return Caller(settings, temporal, r, principal, redactor, admission, limiter, cache, config, semantic, indexes)


CallerDep = Annotated[Caller, Depends(_caller)]


def cacheable(out: QueryOutput) -> bool:
    """Only a whole answer is kept: nothing degraded, failed, flagged by a guardrail or JSON-invalid."""
    fresh = out.cache in ("miss", "snippet")  # generated for this request
    whole = not out.degradations and not out.flags and out.json_error is None
    return fresh and whole and out.generation > 0


async def _input(body: QueryBody, request: Request, who: Caller, stream: bool) -> QueryInput:
    """The checked workflow input, its question not yet redacted (`_redacted`); its tenant check
    reads Redis, so it runs in a thread."""
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
        key_id=who.principal.key_id,
    )


async def _redacted(inp: QueryInput, who: Caller) -> QueryInput:
    return inp if who.redactor is None else await asyncio.to_thread(redact_question, inp, who.redactor)


def _answer(out: QueryOutput, trace_id: str, correlation: str) -> QueryAnswer:
    data = asdict(out)
    data.pop("json_error", None)
    # The question a semantic hit matched was another caller's, perhaps another user's words:
    # kept for feedback and the trace, never shown. `cache: "semantic"` says the answer was reused.
    data.pop("cached_question", None)
    return QueryAnswer(**data, trace_id=trace_id, correlation_id=correlation or None)


@router.post("", response_model=QueryAnswer)
async def query(body: QueryBody, request: Request, response: Response, who: CallerDep) -> QueryAnswer:
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
        semantic_ms = 0.0
        try:
            checked = await _input(body, request, who, stream=False)
            looked = await on_edge(request, who.cached, checked, body.cache)
            inp, out = looked.inp, looked.answer
            if out is None:
                redacted = await _redacted(inp, who)
                ready, out, semantic_ms = await asyncio.to_thread(who.paraphrased, redacted, looked.generation)
                inp = ready
                if out is None:
                    out = await run_query(who.temporal, who.settings, ready)
                    if looked.digest:  # what the lookups added to this miss (and the workflow's, if it looked)
                        spent = out.timings_ms.get("cache", 0.0) + looked.ms + semantic_ms
                        out.timings_ms["cache"] = round(spent, 3)
        finally:
            await on_edge(request, who.settle, ticket, out)
            # On the edge's threads, after the answer: the caller does not wait for it.
            pool, ms = edge_pool(request.app), (time.perf_counter() - started) * 1000
            asyncio.get_running_loop().run_in_executor(pool, who.wrap_up, looked, inp, out, current_trace_id(), ms)
    assert inp is not None  # set whenever an answer came back
    record_answer(inp.tenant, out, time.perf_counter() - started)
    response.headers.update(ticket.headers)
    annotate(out, inp)
    if out.json_error is not None:
        raise JsonInvalid(f"the answer is not valid JSON for the schema: {out.json_error}")
    return _answer(out, current_trace_id(), correlation_id(request))


@router.post("/stream")
async def query_stream(body: QueryBody, request: Request, who: CallerDep) -> StreamingResponse:
    taken_at = await who.admission.acquire(who.tenant)  # refusals here, as plain 429/503s, before the stream
    try:
        ticket = await on_edge(
            request, who.admit, request_id(request), body.question, body.max_output_tokens, body.json_schema
        )
    except Exception:  # refused (or Redis failed): the slot goes back
        who.admission.release(taken_at, who.tenant)
        raise
    try:
        inp = who.snippet_scoped(await _redacted(await _input(body, request, who, stream=True), who))
    except Exception:
        who.admission.release(taken_at, who.tenant)
        await on_edge(request, who.settle, ticket, None)
        raise
    trace_id = current_trace_id()
    task = asyncio.create_task(run_query(who.temporal, who.settings, inp))
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

    async def events() -> AsyncIterator[str]:
        last = "0"  # if the client goes away mid-stream, the query runs on and is settled when it ends
        while True:
            batch = await asyncio.to_thread(_read, who.redis, inp, last)
            for eid, event, data in batch:
                last = eid
                yield _sse(event, data)
            if task.done() and not batch:
                break
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
    headers.update(ticket.headers)
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


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
