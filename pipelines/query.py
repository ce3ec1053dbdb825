"""Answering a question, step by step: retrieve, rerank, context, generate, validate.

The query's use case has its home here, as ingestion's has in `pipelines.ingest`: each step takes
its typed input and returns its typed output over real clients (Redis, the index, the models),
with no orchestration. `activities.query` runs each as a local activity of QueryWorkflow; the
query benchmark calls them in-process. Candidates live in Redis for the length of a request (key in
every input), so the workflow's history carries ids and scores rather than passages. With `stream`
set, the context step publishes the sources and the generation step publishes tokens to the
request's Redis stream, which the API relays as Server-Sent Events.

The tenant's index is resolved once per query, by retrieve; the later steps find the same index
by the embedding version retrieve reports, in the process (`Indexes.loaded`), without asking Redis
again.
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import redis
from opentelemetry import trace

from caches.semantic import semantic_cache
from caches.snippets import Snippet, SnippetCache, decode_key, encode_key, snippet_key
from contracts.query import (
    AnswerInput,
    AnswerOutput,
    Candidate,
    ContextInput,
    ContextOutput,
    FindInput,
    FindOutput,
    GenerateInput,
    GenerateOutput,
    HopInput,
    HopOutput,
    QueryFilters,
    QueryInput,
    RerankInput,
    RerankOutput,
    RetrieveInput,
    RetrieveOutput,
    Scored,
    SecondHop,
    ValidateInput,
    ValidateOutput,
)
from encoders.sparse import Sparse
from generation import prompts
from generation.chain import ProviderChain
from generation.instructions import contain
from generation.verify import Verifier
from index.active import ActiveIndex
from index.catalog import Catalog
from index.lifecycle import Lifecycle
from keel.errors import HopTimeout, KeelError, RerankTimeout, StepTimeout
from pipelines.answer import AnswerSteps
from pipelines.deps import Deps
from retrieval.context import ContextConfig, TokenCounts, confidence, pack
from retrieval.filters import query_where
from retrieval.links import names_in, with_links
from retrieval.rerank import Reranker
from retrieval.retriever import HybridRetriever, candidate, neighbours
from retrieval.shadow import ShadowQueries
from stores import query_state
from stores.keys import TENANTS_KEY, query_candidates_key
from stores.streams import EventSink
from vectorstore.base import Cond, Where

__all__ = ["QuerySteps"]

log = logging.getLogger("keel.query")
_TRACER = trace.get_tracer("keel.query")  # a span per step inside find, as each had its activity's

RETRIEVE, RERANK, HOP = "retrieve", "rerank", "hop"  # rankings kept in the request's state
MIN_HOP_MS = 10  # a second hop is not started on less
PRIMED_PASSAGES = 16  # candidates whose tokens are counted in one call before packing
WARM_TENANTS = 8  # tenants whose index a worker reads once at start


@dataclass(kw_only=True)
class _Found:
    """What retrieve has found so far."""

    key: str  # the request's candidates in Redis
    generation: int = -1
    kept: Snippet | None = None
    cache_ms: float = 0.0
    count: int = 0
    top: list[Scored] = field(default_factory=list)

    def output(self, index: ActiveIndex, started: float) -> RetrieveOutput:
        return RetrieveOutput(
            candidates_key=self.key,
            ranking=RETRIEVE,
            count=self.count,
            top=self.top,
            generation=self.generation,
            embedding_version=index.version.key,
            ms=_ms(started),
            cache_ms=self.cache_ms,
        )


@dataclass(kw_only=True)
class Working:
    """One query's candidates and rankings while its steps run. `find` keeps them in memory from
    retrieval to the packed context and writes them to the request's Redis state once, at its end;
    the separate steps of older histories write and read them there between steps."""

    rankings: dict[str, list[Scored]] = field(default_factory=dict)
    candidates: dict[str, Candidate] = field(default_factory=dict)
    vector: np.ndarray | None = None  # the question's embedding, kept for the semantic cache
    snippet: str | None = None  # where the snippet cache keeps the rankings once re-scored
    sparse: Sparse | None = None  # the question's BM25 vector, for the second hop's search

    def keep(self, r: redis.Redis, key: str, text: bool = True) -> None:
        """Into the request's state; without the passages' text when nothing will read it there
        (an answer's context carries its own): the write was ~5 ms of a query's CPU."""
        query_state.keep(r, key, self.rankings, self.candidates, self.vector, self.snippet, text=text)


class QuerySteps:
    def __init__(
        self,
        deps: Deps,
        reranker: Reranker,
        chain: ProviderChain,
        routes: dict[str, list[str]],
        verifier: Verifier | None = None,
    ) -> None:
        self.d = deps
        self.s = deps.settings
        self.reranker = reranker
        self.catalog = Catalog(deps.redis)
        self.retriever = HybridRetriever(deps.store, deps.sparse, deps.redis)
        lifecycle = Lifecycle(deps.redis, deps.indexes.catalog)
        self.shadow = ShadowQueries(self.s, deps.indexes, lifecycle, self.retriever, reranker)
        self.semantic = semantic_cache(deps) if self.s.cache_enabled else None
        self.snippets = (
            SnippetCache(deps.redis, ttl_s=self.s.cache_ttl_s, max_entries=self.s.cache_max_entries)
            if self.s.cache_enabled
            else None
        )
        # Snippets are kept off the query's time, in order, on a thread of their own.
        self._keeping = ThreadPoolExecutor(max_workers=1, thread_name_prefix="keel-snippet-keep")
        # The prompt as a whole must stay under max_input_tokens: the template (fixed, counted
        # once per tokenizer) and the question come off the context's share first.
        self._template = prompts.load(prompts.TEXT_PROMPT).template
        self._template_tokens: dict[str, int] = {}
        # The last two steps, a model's answer and its checks: pipelines.answer.
        self.answers = AnswerSteps(deps, chain, routes, verifier)

    # What the answer steps hold, read through them (the worker's wiring and its tests look here).
    @property
    def chain(self) -> ProviderChain:
        return self.answers.chain

    @property
    def routes(self) -> dict[str, list[str]]:
        return self.answers.routes

    @property
    def verifier(self) -> Verifier | None:
        return self.answers.verifier

    def template_tokens(self, index: ActiveIndex) -> int:
        if index.version.key not in self._template_tokens:
            self._template_tokens[index.version.key] = index.embedder.count_tokens([self._template])[0]
        return self._template_tokens[index.version.key]

    def warm_up(self) -> None:
        """Open the collection and run each retrieval path once, at start: the first query paid
        for that (~0.5 s) otherwise. The tenant filter matches nothing, so nothing is read back."""
        tenant = "keel-warm-up"
        where = query_where(tenant, 1, [], QueryFilters())
        try:
            index = self.d.indexes.open(tenant)
            if self.semantic is not None:  # its collection too: made on a first query, it cost that query ~1 s
                self.semantic.collection(index)
            for mode in ("hybrid", "dense", "bm25"):
                self.retriever.retrieve(index, tenant, "warm up", where, mode, 1, 1)
            self._warm_tenants()
        except KeelError as exc:  # e.g. a Qdrant server that is down: the worker still starts
            log.warning("retrieval warm-up skipped: %s", exc.message)

    def _warm_tenants(self) -> None:
        """A search as a real query makes, for a few of the tenants: the index keeps payloads on
        disk, and the first search that read them paid ~0.5 s, the semantic cache's ~0.15 s.
        Nothing found is returned to anyone; at most WARM_TENANTS, so a start stays short."""
        for member in self.d.redis.srandmember(TENANTS_KEY, WARM_TENANTS) or []:
            tenant = str(member)
            generation = self.catalog.generation(tenant)
            if generation <= 0:
                continue
            index = self.d.indexes.open(tenant)
            where = query_where(tenant, generation, [], QueryFilters())
            found = self.retriever.retrieve(index, tenant, "warm up", where, "hybrid", 10, 10)
            if self.semantic is not None and found.scored:
                vector = index.embedder.embed_query("warm up").tolist()
                mine = Where(must=(Cond("tenant", value=tenant),))
                self.d.store.search_dense(self.semantic.collection(index), vector, mine, 1, with_payload=False)

    def retrieve(self, inp: RetrieveInput) -> RetrieveOutput:
        """The candidates for the question, kept in the request's state: from the semantic cache
        (a paraphrase answered before: the answer itself), a snippet (this question's rankings
        kept before), or a hybrid search. The tenant's index is resolved here, once per query."""
        w = Working()
        out = self._retrieve(inp.query, w)
        if w.rankings:
            w.keep(self.d.redis, out.candidates_key)
        return out

    def _retrieve(self, q: QueryInput, w: Working) -> RetrieveOutput:
        started = time.monotonic()
        found = _Found(key=query_candidates_key(q.tenant, q.request_id))
        snippets = self.snippets if q.snippet_scope else None
        if snippets is not None:  # one script reads the generation and the snippet
            found.generation, found.kept = snippets.find(q.tenant, q.groups, q.snippet_scope, q.retrieval_text())
            found.cache_ms = _ms(started)
        if found.generation < 0:  # no snippet layer, or Redis is down (this read then says so)
            found.generation = self.catalog.generation(q.tenant)
        if found.generation <= 0:  # nothing is published for this tenant yet
            return found.output(self.d.indexes.active(q.tenant), started)
        index = self.d.indexes.open(q.tenant)
        answered = self._search(q, index, found, w)
        if answered is not None:
            answered.ms = _ms(started)
            return answered
        return found.output(index, started)

    def _search(self, q: QueryInput, index: ActiveIndex, found: _Found, w: Working) -> RetrieveOutput | None:
        """The semantic cache, then a kept snippet, then the hybrid search; returns the output of
        the first two (they end the step), or None with `found` and `w` filled by the search."""
        cached = self.semantic is not None and bool(q.cache_scope)
        # Embedded once: for the cache's lookup and store, and for the dense search.
        vector = None
        if cached or (q.mode != "bm25" and found.kept is None):
            vector = index.embedder.embed_query(q.retrieval_text())
        if cached and q.cache_read and vector is not None and self.semantic is not None:
            looked = time.monotonic()
            text = q.retrieval_text()
            hit = self.semantic.lookup(index, q.tenant, q.groups, q.cache_scope, found.generation, text, vector)
            found.cache_ms += _ms(looked)
            if hit is not None:
                return RetrieveOutput(
                    candidates_key=found.key,
                    ranking=RETRIEVE,
                    count=0,
                    top=[],
                    generation=found.generation,
                    embedding_version=index.version.key,
                    cached_answer=hit.hit.answer,
                    cached_question=hit.question,
                    cache_ms=found.cache_ms,
                )
        saved_vector = vector if cached else None  # the edge keeps a whole answer under it
        kept = found.kept
        w.vector = saved_vector
        if kept is not None and self._restore(index, kept, w):
            final = kept.reranked if kept.reranked is not None else kept.retrieved
            return RetrieveOutput(
                candidates_key=found.key,
                ranking=RETRIEVE if kept.reranked is None else RERANK,
                count=len(kept.retrieved),
                top=final[: query_state.HISTORY_TOP],
                generation=found.generation,
                embedding_version=index.version.key,
                cache_ms=found.cache_ms,
                snippet=True,
                reranked=kept.reranked is not None,
            )
        where = query_where(
            q.tenant, found.generation, q.groups, q.filters, exclude_flagged=q.guard_sources == "exclude"
        )
        s = self.s
        hits = self.retriever.retrieve(
            index, q.tenant, q.retrieval_text(), where, q.mode, s.retrieve_candidates, s.retrieve_prefetch, vector
        )
        to_keep = None
        if self.snippets is not None and q.snippet_scope:
            snippet = snippet_key(q.tenant, q.snippet_scope, found.generation, q.retrieval_text(), hits.candidates)
            if q.rerank and len(hits.scored) > 1:  # kept by the re-scorer, once it is done in time
                to_keep = encode_key(snippet)
            else:
                self._keeping.submit(self.snippets.keep, snippet, hits.scored, None)
        w.rankings[RETRIEVE], w.candidates, w.snippet = list(hits.scored), dict(hits.candidates), to_keep
        w.sparse = hits.sparse
        found.count, found.top = len(hits.scored), hits.scored[: query_state.HISTORY_TOP]
        self.shadow.offer(q.tenant, q.retrieval_text(), q.mode, where, hits)
        return None

    def _restore(self, index: ActiveIndex, kept: Snippet, w: Working) -> bool:
        """The request's state from a snippet: its rankings, and its candidates read back from
        the index by id. False (retrieve afresh) when any of them is no longer there."""
        ids = list(dict.fromkeys(s.point_id for s in kept.retrieved))
        hits = self.d.store.retrieve(index.collection, ids)
        if len(hits) != len(ids):
            return False
        w.rankings = {RETRIEVE: list(kept.retrieved)} | ({} if kept.reranked is None else {RERANK: kept.reranked})
        w.candidates = {h.id: candidate(h) for h in hits}
        return True

    def rerank(self, inp: RerankInput) -> RerankOutput:
        started = time.monotonic()
        ranked, snippet = query_state.ranking_and_snippet(self.d.redis, inp.candidates_key, inp.ranking)
        # The fusion re-scorer reads only scores: passages come out of Redis only for a model that reads them.
        ids = [s.point_id for s in ranked[: self.s.rerank_depth]] if self.reranker.reads_text else []
        candidates = query_state.candidates(self.d.redis, inp.candidates_key, ids)
        scored = self._rescore(inp.question, ranked, candidates, started, inp.deadline_ms)
        query_state.save(self.d.redis, inp.candidates_key, RERANK, scored, {})
        if snippet is not None and self.snippets is not None:
            self._keeping.submit(self.snippets.keep, decode_key(snippet), ranked, scored)
        top = scored[: query_state.HISTORY_TOP]
        return RerankOutput(ranking=RERANK, top=top, reranker=self.reranker.name, ms=_ms(started))

    def _rescore(
        self, question: str, ranked: list[Scored], candidates: dict[str, Candidate], started: float, budget_ms: float
    ) -> list[Scored]:
        """The head of the ranking re-scored, its tail after it; RerankTimeout past the budget."""
        deadline = started + budget_ms / 1000
        head, tail = ranked[: self.s.rerank_depth], ranked[self.s.rerank_depth :]
        scored = [*self.reranker.rerank(question, head, candidates, deadline), *tail]
        if time.monotonic() > deadline:  # a late order is not used: the workflow keeps retrieval's
            raise RerankTimeout(f"rerank took {_ms(started):.0f} ms; its budget is {budget_ms:.0f} ms")
        return scored

    def hop(self, inp: HopInput) -> HopOutput:
        """The second hop: the documents the top passages name by title (`retrieval.links`),
        searched with the question among those documents only, fused into the ranking. Visibility,
        groups and filters are the first hop's; the linking documents are left out."""
        started = time.monotonic()
        ranked = query_state.ranking(self.d.redis, inp.candidates_key, inp.ranking)
        top = query_state.candidates(
            self.d.redis, inp.candidates_key, [x.point_id for x in ranked[: self.s.hop_passages]]
        )
        hopped, candidates, hop = self._hop(
            inp.query, inp.generation, inp.embedding_version, ranked, top, started, inp.deadline_ms
        )
        if hopped is None:
            return HopOutput(ranking=inp.ranking, hop=hop, ms=_ms(started))
        query_state.save(self.d.redis, inp.candidates_key, HOP, hopped, candidates)
        return HopOutput(ranking=HOP, hop=hop, ms=_ms(started))

    def _hop(
        self,
        q: QueryInput,
        generation: int,
        embedding_version: str,
        ranked: list[Scored],
        candidates: dict[str, Candidate],
        started: float,
        budget_ms: float,
        sparse: Sparse | None = None,
    ) -> tuple[list[Scored] | None, dict[str, Candidate], SecondHop]:
        """The ranking with the linked passages fused in (None: nothing linked) and the linked
        candidates; HopTimeout past the budget."""
        s = self.s
        if budget_ms < MIN_HOP_MS:  # too short for one search: say so rather than pretend
            raise HopTimeout(f"the second hop's budget of {budget_ms:.0f} ms is under {MIN_HOP_MS} ms")
        top = [candidates[x.point_id] for x in ranked[: s.hop_passages] if x.point_id in candidates]
        names = names_in([c.text for c in top], q.question, [c.title for c in top])
        if not names:
            return None, {}, SecondHop(names=0, linked=0)
        where = query_where(q.tenant, generation, q.groups, q.filters, exclude_flagged=q.guard_sources == "exclude")
        where = Where(
            must=(*where.must, Cond("title_key", any=tuple(names))),
            must_not=(*where.must_not, Cond("doc_id", any=tuple({c.doc_id for c in top}))),
        )
        index = self.d.indexes.loaded(q.tenant, embedding_version)  # the first hop's, even mid-flip
        found = self.retriever.retrieve(
            index, q.tenant, q.retrieval_text(), where, "bm25", s.hop_limit, s.hop_limit, sparse=sparse
        )
        linked, added = list(found.scored), dict(found.candidates)
        if len(linked) < s.hop_limit:  # named documents that share no word with the question: their opening passage
            opening, _ = self.d.store.scroll(index.collection, where.and_(Cond("chunk_index", value=0)), s.hop_limit)
            for h in opening:
                if h.id not in added and len(linked) < s.hop_limit:
                    linked.append(Scored(point_id=h.id, doc_id=str(h.payload.get("doc_id", ""))))
                    added[h.id] = candidate(h)
        if time.monotonic() - started > budget_ms / 1000:
            raise HopTimeout(f"the second hop took {_ms(started):.0f} ms; its budget is {budget_ms:.0f} ms")
        if not linked:
            return None, {}, SecondHop(names=len(names), linked=0)
        return with_links(ranked, linked), added, SecondHop(names=len(names), linked=len(linked))

    def context(self, inp: ContextInput) -> ContextOutput:
        started = time.monotonic()
        ranked = query_state.ranking(self.d.redis, inp.candidates_key, inp.ranking)
        candidates = query_state.candidates(self.d.redis, inp.candidates_key, [s.point_id for s in ranked])
        return self._pack(inp, ranked, candidates, started)

    def _pack(
        self, inp: ContextInput, ranked: list[Scored], candidates: dict[str, Candidate], started: float
    ) -> ContextOutput:
        index = self.d.indexes.loaded(inp.tenant, inp.embedding_version)
        tok = index.embedder
        # A schema's JSON is dense: a token per three characters, as the admission reserved it.
        overhead = self.template_tokens(index) + tok.count_tokens([inp.question])[0] + inp.schema_chars // 3
        budget = max(0, min(inp.token_budget or self.s.context_token_budget, self.s.max_input_tokens - overhead))
        # Chunks carry their token counts from ingest; the few that do not are counted in batches.
        counts = TokenCounts(tok.count_tokens)
        head = [candidates[x.point_id] for x in ranked[:PRIMED_PASSAGES] if x.point_id in candidates]
        counts.prime([c.text for c in head if not c.token_count])

        def near(hit: Candidate, window: int) -> list[Candidate]:
            found = neighbours(self.d.store, index.collection, inp.tenant, hit, window)
            counts.prime([c.text for c in found if not c.token_count])
            return found

        packed = pack(
            ranked,
            candidates,
            ContextConfig(budget, self.s.context_window_hits, self.s.context_window),
            counts,
            tok.truncate,
            near,
        )
        passages, flagged = contain(packed.passages, inp.sources_policy)
        if inp.stream:
            sources = [
                {"ref": p.ref, "doc_id": p.doc_id, "source": p.source, "section_path": p.section_path} for p in passages
            ]
            EventSink(self.d.redis, inp.tenant, inp.request_id).emit("sources", sources)
        return ContextOutput(
            passages=passages,
            tokens=packed.tokens,
            dropped_duplicates=packed.dropped_duplicates,
            dropped_over_budget=packed.dropped_over_budget,
            confidence=confidence(ranked),
            ms=_ms(started),
            sources_flagged=flagged,
        )

    def find(self, inp: FindInput) -> FindOutput:
        """Retrieve, rerank, second hop and context in one call, the candidates in memory between
        them. Each step keeps its budget and its degradation: a late or failed re-scoring keeps
        retrieval's order (`rerank_skipped`), a late or failed hop the first hop's ranking
        (`second_hop_skipped`); retrieval past its budget fails the call (StepTimeout), and packing
        that fails or passes its budget leaves no context (`context_failed`), as the separate
        steps' timeouts did. The request's state is written once, at the end."""
        started = time.monotonic()
        q, budgets = inp.query, inp.budgets_ms
        w = Working()
        with _TRACER.start_as_current_span("query.retrieve"):
            retrieved = self._retrieve(q, w)
        _within("retrieve", retrieved.ms, budgets["retrieve"])
        out = FindOutput(retrieved=retrieved, ranking=retrieved.ranking, timings_ms={"retrieve": retrieved.ms})
        if retrieved.cached_answer is not None:  # a paraphrase answered before: the answer itself
            out.ms = _ms(started)
            return out
        ranked = w.rankings.get(retrieved.ranking, [])
        if q.rerank and not retrieved.reranked and retrieved.count > 1:
            ranked = self._find_rerank(q, w, ranked, budgets["rerank"], out)
        if q.second_hop and retrieved.count > 0:
            ranked = self._find_hop(q, retrieved, w, ranked, budgets["hop"], out)
        if q.answer:
            self._find_context(q, retrieved, w, ranked, budgets["context"], out)
        if w.rankings:  # for the edge (the answer cache; a search's passages, with their text) and evaluation
            w.keep(self.d.redis, retrieved.candidates_key, text=not q.answer)
        out.ms = _ms(started)
        return out

    def _find_rerank(
        self, q: QueryInput, w: Working, ranked: list[Scored], budget_ms: float, out: FindOutput
    ) -> list[Scored]:
        """find's re-scoring: the new order, or retrieval's when it is late or fails."""
        at = time.monotonic()
        try:
            with _TRACER.start_as_current_span("query.rerank"):
                scored = w.rankings[RERANK] = self._rescore(q.retrieval_text(), ranked, w.candidates, at, budget_ms)
        except Exception as exc:
            log.warning("rerank skipped for %s: %s", q.request_id, exc)
            out.degradations.append("rerank_skipped")
            return ranked
        out.ranking, out.reranker, out.timings_ms["rerank"] = RERANK, self.reranker.name, _ms(at)
        if w.snippet is not None and self.snippets is not None:
            self._keeping.submit(self.snippets.keep, decode_key(w.snippet), w.rankings[RETRIEVE], scored)
        return scored

    def _find_hop(
        self,
        q: QueryInput,
        retrieved: RetrieveOutput,
        w: Working,
        ranked: list[Scored],
        budget_ms: float,
        out: FindOutput,
    ) -> list[Scored]:
        """find's second hop: the ranking with the linked passages, or the first hop's when
        nothing links or the hop is late or fails."""
        at = time.monotonic()
        try:
            with _TRACER.start_as_current_span("query.hop"):
                hopped, added, hop = self._hop(
                    q,
                    retrieved.generation,
                    retrieved.embedding_version,
                    ranked,
                    w.candidates,
                    at,
                    budget_ms,
                    sparse=w.sparse,  # the same question: its BM25 vector is read once
                )
        except Exception as exc:
            log.warning("second hop skipped for %s: %s", q.request_id, exc)
            out.degradations.append("second_hop_skipped")
            return ranked
        out.hop, out.timings_ms["hop"] = hop, _ms(at)
        if hopped is None:
            return ranked
        w.rankings[HOP], out.ranking = hopped, HOP
        w.candidates.update(added)
        return hopped

    def _find_context(
        self,
        q: QueryInput,
        retrieved: RetrieveOutput,
        w: Working,
        ranked: list[Scored],
        budget_ms: float,
        out: FindOutput,
    ) -> None:
        """find's context; none when packing fails or passes its budget (the edge answers 503)."""
        at = time.monotonic()
        try:
            with _TRACER.start_as_current_span("query.context"):
                context = self._pack(_context_input(q, retrieved), ranked, w.candidates, at)
            _within("context", context.ms, budget_ms)
        except Exception as exc:
            log.warning("context failed for %s: %s", q.request_id, exc)
            out.degradations.append("context_failed")
            return
        out.context, out.timings_ms["context"] = context, context.ms

    def generate(self, inp: GenerateInput) -> GenerateOutput:
        return self.answers.generate(inp)

    def validate(self, inp: ValidateInput) -> ValidateOutput:
        return self.answers.validate(inp)

    def answer(self, inp: AnswerInput) -> AnswerOutput:
        return self.answers.answer(inp)


def _within(step: str, ms: float, budget_ms: float) -> None:
    if ms > budget_ms:
        raise StepTimeout(f"{step} took {ms:.0f} ms; its budget is {budget_ms:.0f} ms")


def _context_input(q: QueryInput, retrieved: RetrieveOutput) -> ContextInput:
    return ContextInput(
        tenant=q.tenant,
        question=q.question,
        candidates_key=retrieved.candidates_key,
        ranking="",  # the ranking is in memory
        token_budget=q.context_tokens or 0,
        request_id=q.request_id,
        stream=q.stream,
        embedding_version=retrieved.embedding_version,
        sources_policy=q.guard_sources,
        schema_chars=len(json.dumps(q.json_schema)) if q.json_schema is not None else 0,
    )


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 2)
