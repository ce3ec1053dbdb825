"""The edge's side of answering a question, around its workflow: the caller's limits, the exact
cache before it, and after the answer is sent, its record and what the caches keep.

The semantic cache is looked up in one place, the workflow's retrieve step, which embeds the
question anyway; it leaves the vector in the request's state, where `wrap_up` finds it to keep
a whole answer under it.

The HTTP routes (`api.routers.query`) only translate HTTP to these and back; the workflow and its
steps are `workflows.query` and `pipelines.query`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import redis
from temporalio.client import Client

from app.feedback import answer_record
from app.query import answer_scope, output_tokens, reserve_tokens, retrieval_scope, reveal_output
from caches.entries import entry_digest
from caches.exact import ExactCache
from caches.handover import HandOver
from caches.semantic import SemanticCache
from contracts.query import QueryInput, QueryOutput, query_output
from gateway.admission import Admission
from gateway.keys import Principal
from gateway.limits import Limiter, Ticket
from guardrails.pii import Redactor
from guardrails.pseudonyms import reveal, tokens_in
from index.active import Indexes
from keel.config import Settings
from keel.errors import RateLimited
from observability import metrics
from stores import feedback, query_state
from stores.pii_vault import PiiVault

log = logging.getLogger("keel.query")


@dataclass(kw_only=True)
class Looked:
    """The exact cache's lookup at the edge."""

    inp: QueryInput  # with its cache scopes set
    digest: str = ""  # the question's exact entry ("": the cache is off)
    answer: QueryOutput | None = None  # a hit
    ms: float = 0.0  # what a miss's lookup took
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
    vault: PiiVault | None = None  # the tenant's pseudonyms and their originals (None: placeholders)
    handover: HandOver | None = None  # the semantic layer's writer when the worker holds the indexes

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
        digest = entry_digest(scope, inp.retrieval_text())  # a follow-up's context is part of it
        _, hit = self.cache.lookup(inp.tenant, inp.groups, digest) if wanted else (-1, None)
        metrics.CACHE.labels(layer="exact", outcome="hit" if hit else ("miss" if wanted else "skipped")).inc()
        if hit is None:
            return Looked(inp=inp, digest=digest, ms=(time.perf_counter() - started) * 1000)
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
                text = inp.retrieval_text()
                if self.semantic is not None and vector is not None and self.indexes is not None:
                    index = self.indexes.by_version(inp.tenant, out.embedding_version)
                    self.semantic.remember(index, inp.tenant, inp.cache_scope, out.generation, text, vector, answer)
                elif self.handover is not None and vector is not None:
                    self.handover.remember(
                        out.embedding_version, inp.tenant, inp.cache_scope, out.generation, text, vector, answer
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

    def revealed(self, out: QueryOutput, question_tokens: dict[str, str]) -> QueryOutput:
        """The answer as its reader sees it: pseudonym tokens turned back into names, from the
        question's own and the tenant's vault (the answer came from passages the caller may read)."""
        if self.vault is None:
            return out
        wanted = [t for t in output_tokens(out) if t not in question_tokens]
        return reveal_output(out, {**question_tokens, **self.vault.reveal(self.tenant, wanted)})

    def revealed_text(self, text: str, question_tokens: dict[str, str]) -> str:
        """A piece of a streamed answer, revealed the same way."""
        if self.vault is None:
            return text
        wanted = [t for t in tokens_in(text) if t not in question_tokens]
        return reveal(text, {**question_tokens, **self.vault.reveal(self.tenant, wanted)})

    def settle(self, ticket: Ticket, out: QueryOutput | None) -> None:
        used, cost = (out.tokens_in + out.tokens_out, out.cost_usd) if out is not None else (0, 0.0)
        self.limiter.settle(ticket, used, cost)


def cacheable(out: QueryOutput) -> bool:
    """Only a whole answer is kept: nothing degraded, failed, flagged by a guardrail or JSON-invalid."""
    fresh = out.cache in ("miss", "snippet")  # generated for this request
    whole = not out.degradations and not out.flags and out.json_error is None
    return fresh and whole and out.generation > 0
