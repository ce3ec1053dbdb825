"""The query activities: one method per step of QueryWorkflow, all run as local activities.

Candidates live in Redis for the length of a request (key in every input), so the workflow's
history carries ids and scores rather than passages. With `stream` set, the context step
publishes the sources and the generation step publishes tokens to the request's Redis stream,
which the API relays as Server-Sent Events.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from temporalio import activity

from activities.errors import mapped
from generation import prompts
from generation.chain import ProviderChain
from generation.providers import GenerationRequest
from generation.router import CLARIFY, NO_SOURCES, RoutingConfig, choose_route, clarifying_answer, no_sources_answer
from generation.validate import check_citations, check_json
from ingestion.pipeline import IngestDeps
from keel import query_state
from keel.errors import KeelError
from keel.query_contracts import (
    Candidate,
    ContextInput,
    ContextOutput,
    GenerateInput,
    GenerateOutput,
    QueryFilters,
    RerankInput,
    RerankOutput,
    RetrieveInput,
    RetrieveOutput,
    ValidateInput,
    ValidateOutput,
)
from keel.redis_keys import generation_key, prompt_stats_key, query_candidates_key
from keel.streams import EventSink
from retrieval.context import ContextConfig, confidence, pack
from retrieval.filters import query_where
from retrieval.rerank import Reranker, RerankTimeout
from retrieval.retriever import HybridRetriever, candidate
from vectorstore.base import Cond, Where

__all__ = ["QueryActivities"]

log = logging.getLogger("keel.query")

RETRIEVE, RERANK = "retrieve", "rerank"  # rankings kept in the request's state


class QueryActivities:
    def __init__(
        self, deps: IngestDeps, reranker: Reranker, chain: ProviderChain, routes: dict[str, list[str]]
    ) -> None:
        self.d = deps
        self.s = deps.settings
        self.reranker = reranker
        self.chain = chain
        self.routes = routes
        self.routing = RoutingConfig(self.s.clarify_below, self.s.easy_min_confidence, self.s.easy_max_words)
        self._retriever: HybridRetriever | None = None
        # The prompt as a whole must stay under max_input_tokens: the template (fixed, counted
        # once here) and the question come off the context's share first.
        self._template_tokens = deps.embedder.count_tokens([prompts.load(prompts.TEXT_PROMPT).template])[0]

    @property
    def retriever(self) -> HybridRetriever:
        if self._retriever is None:  # the collection is opened on first use (see Steps.collection)
            self.d.store.ensure_collection(self.s.collection, self.d.embedder.version.dim)
            self._retriever = HybridRetriever(self.d.store, self.s.collection, self.d.embedder, self.d.sparse)
        return self._retriever

    def warm_up(self) -> None:
        """Open the collection and run each retrieval path once, at start: the first query paid
        for that (~0.5 s) otherwise. The tenant filter matches nothing, so nothing is read back."""
        where = query_where("keel-warm-up", 1, [], QueryFilters())
        try:
            for mode in ("hybrid", "dense", "bm25"):
                self.retriever.retrieve("warm up", where, mode, 1, 1)
        except KeelError as exc:  # e.g. a Qdrant server that is down: the worker still starts
            log.warning("retrieval warm-up skipped: %s", exc.message)

    @activity.defn(name="query.retrieve")
    @mapped
    def retrieve(self, inp: RetrieveInput) -> RetrieveOutput:
        started = time.monotonic()
        q = inp.query
        generation = int(self.d.redis.get(generation_key(q.tenant)) or 0)
        key = query_candidates_key(q.tenant, q.request_id)
        version = self.d.embedder.version.key
        if generation == 0:  # nothing published for this tenant yet
            return RetrieveOutput(key, RETRIEVE, 0, [], 0, version, _ms(started))
        where = query_where(q.tenant, generation, q.groups, q.filters)
        found = self.retriever.retrieve(q.question, where, q.mode, self.s.retrieve_candidates, self.s.retrieve_prefetch)
        query_state.save(self.d.redis, key, RETRIEVE, found.scored, found.candidates)
        top = found.scored[: query_state.HISTORY_TOP]
        return RetrieveOutput(key, RETRIEVE, len(found.scored), top, generation, version, _ms(started))

    @activity.defn(name="query.rerank")
    @mapped
    def rerank(self, inp: RerankInput) -> RerankOutput:
        started = time.monotonic()
        deadline = started + inp.deadline_ms / 1000
        ranked = query_state.ranking(self.d.redis, inp.candidates_key, inp.ranking)
        head, tail = ranked[: self.s.rerank_depth], ranked[self.s.rerank_depth :]
        candidates = query_state.candidates(self.d.redis, inp.candidates_key, [s.point_id for s in head])
        scored = [*self.reranker.rerank(inp.question, head, candidates, deadline), *tail]
        if time.monotonic() > deadline:  # a late order is not used: the workflow keeps retrieval's
            raise RerankTimeout(f"rerank took {_ms(started):.0f} ms; its budget is {inp.deadline_ms:.0f} ms")
        query_state.save(self.d.redis, inp.candidates_key, RERANK, scored, {})
        return RerankOutput(RERANK, scored[: query_state.HISTORY_TOP], self.reranker.name, _ms(started))

    @activity.defn(name="query.context")
    @mapped
    def context(self, inp: ContextInput) -> ContextOutput:
        started = time.monotonic()
        ranked = query_state.ranking(self.d.redis, inp.candidates_key, inp.ranking)
        candidates = query_state.candidates(self.d.redis, inp.candidates_key, [s.point_id for s in ranked])
        tok = self.d.embedder
        overhead = self._template_tokens + tok.count_tokens([inp.question])[0]
        budget = max(0, min(inp.token_budget or self.s.context_token_budget, self.s.max_input_tokens - overhead))
        packed = pack(
            ranked,
            candidates,
            ContextConfig(budget, self.s.context_window_hits, self.s.context_window),
            lambda text: tok.count_tokens([text])[0],
            tok.truncate,
            lambda hit, window: self._neighbours(inp.tenant, hit, window),
        )
        if inp.stream:
            sources = [
                {"ref": p.ref, "doc_id": p.doc_id, "source": p.source, "section_path": p.section_path}
                for p in packed.passages
            ]
            EventSink(self.d.redis, inp.tenant, inp.request_id).emit("sources", sources)
        return ContextOutput(
            packed.passages,
            packed.tokens,
            packed.dropped_duplicates,
            packed.dropped_over_budget,
            confidence(ranked),
            _ms(started),
        )

    @activity.defn(name="query.generate")
    @mapped
    def generate(self, inp: GenerateInput) -> GenerateOutput:
        started = time.monotonic()
        deadline = started + inp.deadline_ms / 1000
        sink = EventSink(self.d.redis, inp.tenant, inp.request_id) if inp.stream else None
        route = inp.route or choose_route(inp.question, inp.confidence, len(inp.passages), self.routing)
        if route in (NO_SOURCES, CLARIFY):
            text = no_sources_answer() if route == NO_SOURCES else clarifying_answer(inp.question)
            if sink is not None:
                sink.token(text)
            return GenerateOutput(text, route, "", "", "", "", 0, 0, 0.0, [], True, _ms(started))

        rendered = prompts.render(inp.question, inp.passages, inp.json_schema)
        max_out = min(inp.max_output_tokens or self.s.max_output_tokens, self.s.max_output_tokens)

        def request(timeout_s: float) -> GenerationRequest:
            return GenerationRequest(rendered.text, inp.question, inp.passages, max_out, timeout_s, inp.json_schema)

        result = self.chain.run(
            self.routes.get(route, []),
            request,
            deadline,
            sink.token if sink is not None else None,
            sink.reset if sink is not None else None,
        )
        gen, provider = result.generation, result.provider
        tokens_in = gen.tokens_in or sum(self.d.embedder.count_tokens([rendered.text]))
        tokens_out = gen.tokens_out or sum(self.d.embedder.count_tokens([gen.text]))
        cost = tokens_in / 1000 * provider.price_in_per_1k + tokens_out / 1000 * provider.price_out_per_1k
        return GenerateOutput(
            gen.text,
            route,
            provider.name,
            gen.model,
            rendered.prompt_id,
            rendered.hash,
            tokens_in,
            tokens_out,
            round(cost, 6),
            result.attempts,
            False,
            _ms(started),
        )

    @activity.defn(name="query.validate")
    @mapped
    def validate(self, inp: ValidateInput) -> ValidateOutput:
        started = time.monotonic()
        if inp.clarifying:
            return ValidateOutput(inp.text, [], 0.0, ms=_ms(started))
        checked = check_citations(inp.text, inp.passages)
        out = ValidateOutput(
            checked.text, checked.citations, checked.supported_rate, checked.unsupported, checked.invalid_refs
        )
        if inp.response_format == "json" and inp.json_schema is not None:
            js = check_json(inp.text, inp.json_schema)
            out.json_value, out.json_error, out.repaired = js.value, js.error, js.repaired
            pipe = self.d.redis.pipeline()  # parse_error_rate per prompt version = errors / answers
            pipe.hincrby(prompt_stats_key(inp.prompt_id), "json_answers", 1)
            if js.error is not None:
                pipe.hincrby(prompt_stats_key(inp.prompt_id), "json_parse_errors", 1)
            if js.repaired:
                pipe.hincrby(prompt_stats_key(inp.prompt_id), "json_repaired", 1)
            pipe.execute()
        out.ms = _ms(started)
        return out

    def _neighbours(self, tenant: str, hit: Candidate, window: int) -> list[Candidate]:
        where = Where(
            must=(
                Cond("tenant", value=tenant),
                Cond("doc_id", value=hit.doc_id),
                Cond("version", value=hit.version),
                Cond("chunk_index", gte=hit.chunk_index - window, lte=hit.chunk_index + window),
            ),
            must_not=(Cond("chunk_index", value=hit.chunk_index),),
        )
        hits, _ = self.d.store.scroll(self.s.collection, where, limit=2 * window)
        return [candidate(h) for h in hits]

    def all(self) -> list[Any]:
        return [self.retrieve, self.rerank, self.context, self.generate, self.validate]


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 2)
