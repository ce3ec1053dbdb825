"""QueryWorkflow: retrieve -> rerank -> hop -> context -> generate -> validate, each step on a budget.

Retrieval looks in the semantic answer cache first (`caches.semantic`); a hit is the answer. It
also looks in the snippet cache (`caches.snippets`): rankings kept for the same question and
scope stand in for retrieval, and for re-scoring when they were re-scored.

Every step is a local activity with a deadline from `policies.QUERY_BUDGETS_MS`. A step that
fails or runs out of time degrades the answer instead of failing the query, and the degradation
is recorded on it: no retrieval is a "no sources" answer, a late rerank keeps the retrieval
order, a late second hop (the documents the top passages name, `retrieval.links`) keeps the
first hop's, a failed generation returns the best passage, a failed validation returns the answer
without checked citations. Its id is `query/<tenant>/<request id>`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy

# A failed local activity can surface as ActivityError or as its cause (ApplicationError,
# TimeoutError); FailureError is their common base: any of them degrades the step.
from temporalio.exceptions import FailureError

from workflows import policies
from workflows.policies import query_step

with workflow.unsafe.imports_passed_through():
    from activities.query import QueryActivities
    from contracts.query import (
        AnswerInput,
        AnswerOutput,
        ContextInput,
        ContextOutput,
        FindInput,
        FindOutput,
        GenerateInput,
        GenerateOutput,
        HopInput,
        QueryInput,
        QueryOutput,
        RerankInput,
        RetrieveInput,
        RetrieveOutput,
        SecondHop,
        ValidateOutput,
        best_passage,
        query_output,
        unverified,
        validate_input,
    )

STEP_GRACE_MS = 200  # rerank and generate stop themselves at their deadline; the timeout is the backstop
FIND_STEPS = ("retrieve", "rerank", "hop", "context")


class StepOutput(Protocol):
    ms: float  # measured by the activity: workflow time does not move inside a task


In = TypeVar("In")
Out = TypeVar("Out", bound=StepOutput)


@workflow.defn(name="Query", sandboxed=False)
class QueryWorkflow:
    def __init__(self) -> None:
        self._degraded: list[str] = []
        self._timings: dict[str, float] = {}

    @workflow.run
    async def run(self, q: QueryInput) -> QueryOutput:
        budget = policies.query_budgets(q.budgets_ms)
        if workflow.patched("find-and-answer"):
            return await self._find_and_answer(q, budget)
        return await self._step_by_step(q, budget)  # histories recorded before the patch

    async def _find_and_answer(self, q: QueryInput, budget: dict[str, float]) -> QueryOutput:
        """Two local activities: find (retrieve, rerank, second hop, context; the candidates stay
        in the worker's memory) and answer (generate, validate). Each step keeps its budget, its
        timing and its degradation, as when each was an activity of its own."""
        try:
            found = await query_step(
                QueryActivities.find,
                FindInput(query=q, budgets_ms={step: budget[step] for step in FIND_STEPS}),
                sum(budget[step] for step in FIND_STEPS) + STEP_GRACE_MS,
                summary="retrieve, rerank, second hop, context",
            )
        except FailureError:  # retrieval is lost: the edge answers 503, never "nothing matched"
            found = FindOutput(retrieved=_no_retrieval(), ranking="", degradations=["retrieve_failed"])
        retrieved = found.retrieved
        self._timings.update(found.timings_ms)
        self._degraded.extend(found.degradations)
        if retrieved.cache_ms:
            self._timings["cache"] = retrieved.cache_ms  # of retrieve's time, the cache lookups'
        if retrieved.cached_answer is not None:  # a paraphrase of a question answered before
            return self._cached(q, retrieved)
        context = found.context or _no_context()
        if not q.answer or found.context is None:  # retrieval only (evaluation), or retrieval lost
            return self._found(q, retrieved, found.ranking, found.hop)
        try:
            answered = await query_step(
                QueryActivities.answer,
                AnswerInput(
                    generate=generate_input(q, retrieved, context, budget["generate"]),
                    validate_budget_ms=budget["validate"],
                ),
                budget["generate"] + STEP_GRACE_MS + budget["validate"],
                retry=policies.NO_RETRY,
                summary="generate, validate",
            )
        except FailureError:  # the best passage, cited and unchecked, is still a grounded answer
            generated = best_passage(context.passages)
            answered = AnswerOutput(
                generated=generated,
                validated=unverified(generated),
                degradations=["generate_failed", "validate_skipped"],
            )
        self._timings.update(answered.timings_ms)
        self._degraded.extend(answered.degradations)
        answer = self._answer(q, retrieved, context, answered.generated, answered.validated)
        answer.second_hop = found.hop
        return answer

    async def _step_by_step(self, q: QueryInput, budget: dict[str, float]) -> QueryOutput:
        """Each step its own local activity, the candidates in Redis between them: how queries ran
        before the `find-and-answer` patch. Kept while such histories may be replayed."""
        retrieved = await self._step(
            "retrieve", QueryActivities.retrieve, RetrieveInput(query=q), budget["retrieve"], _no_retrieval
        )
        if retrieved.cache_ms:
            self._timings["cache"] = retrieved.cache_ms  # of retrieve's time, the semantic lookup's
        # A paraphrase of a question answered before, in the same scope (retrieve looked first).
        # Deprecated patches (docs/concepts/durability-and-replay.md), called one more release.
        if retrieved.cached_answer is not None:
            workflow.deprecate_patch("semantic-cache")
            return self._cached(q, retrieved)
        if retrieved.reranked:
            workflow.deprecate_patch("snippet-cache")
            ranking = retrieved.ranking  # the snippet cache's, re-scored when it was kept
        else:
            ranking = await self._rerank(q, retrieved, budget["rerank"])
        hop = None
        if q.second_hop and retrieved.count > 0 and workflow.patched("second-hop"):
            ranking, hop = await self._hop(q, retrieved, ranking, budget["hop"])
        if not q.answer:  # retrieval only (evaluation)
            return self._found(q, retrieved, ranking, hop)
        context = await self._step(
            "context", QueryActivities.context, _context_input(q, retrieved, ranking), budget["context"], _no_context
        )
        generated = await self._step(
            "generate",
            QueryActivities.generate,
            generate_input(q, retrieved, context, budget["generate"]),
            budget["generate"] + STEP_GRACE_MS,
            lambda: best_passage(context.passages),
            retry=policies.NO_RETRY,
        )
        validated = await self._step(
            "validate",
            QueryActivities.validate,
            validate_input(generate_input(q, retrieved, context, budget["generate"]), generated),
            budget["validate"],
            lambda: unverified(generated),  # the answer goes out unchecked, and says so (never silently uncited)
            degraded_as="validate_skipped",
        )
        answer = self._answer(q, retrieved, context, generated, validated)
        answer.second_hop = hop
        return answer

    def _found(self, q: QueryInput, retrieved: RetrieveOutput, ranking: str, hop: SecondHop | None) -> QueryOutput:
        """No answer: a retrieval-only query's ranking, or a query whose retrieval was lost."""
        return QueryOutput(
            request_id=q.request_id,
            answer="",
            citations=[],
            degradations=self._degraded,
            timings_ms=self._timings,
            embedding_version=retrieved.embedding_version,
            ranking=ranking,
            second_hop=hop,
        )

    async def _step(
        self,
        name: str,
        activity: Callable[[Any, In], Out],
        arg: In,
        budget_ms: float,
        fallback: Callable[[], Out],
        *,
        retry: RetryPolicy = policies.QUERY_RETRY,
        degraded_as: str | None = None,
    ) -> Out:
        """Run one step on its budget; if it fails or runs out of time, degrade to `fallback`."""
        try:
            out = await query_step(activity, arg, budget_ms, retry=retry)
        except FailureError:
            self._degraded.append(degraded_as or f"{name}_failed")
            out = fallback()
        self._timings[name] = out.ms
        return out

    async def _rerank(self, q: QueryInput, retrieved: RetrieveOutput, budget_ms: float) -> str:
        """The ranking to use next: the re-scored one, or retrieval's when rerank is off or skipped."""
        if not q.rerank or retrieved.count <= 1:
            return retrieved.ranking
        try:
            reranked = await query_step(
                QueryActivities.rerank,
                RerankInput(
                    question=q.retrieval_text(),  # a follow-up's context re-scores as it retrieved
                    candidates_key=retrieved.candidates_key,
                    ranking=retrieved.ranking,
                    deadline_ms=budget_ms,
                ),
                budget_ms + STEP_GRACE_MS,
                retry=policies.NO_RETRY,
            )
        except FailureError:  # late or failed: keep retrieval's order
            self._degraded.append("rerank_skipped")
            return retrieved.ranking
        self._timings["rerank"] = reranked.ms
        return reranked.ranking

    async def _hop(
        self, q: QueryInput, retrieved: RetrieveOutput, ranking: str, budget_ms: float
    ) -> tuple[str, SecondHop | None]:
        """The ranking with the documents its top passages name, or the first hop's when the hop
        is out of time or fails (then the answer says `second_hop_skipped`)."""
        try:
            hopped = await query_step(
                QueryActivities.hop,
                HopInput(
                    query=q,
                    candidates_key=retrieved.candidates_key,
                    ranking=ranking,
                    generation=retrieved.generation,
                    deadline_ms=budget_ms,
                    embedding_version=retrieved.embedding_version,
                ),
                budget_ms + STEP_GRACE_MS,
                retry=policies.NO_RETRY,
            )
        except FailureError:
            self._degraded.append("second_hop_skipped")
            return ranking, None
        self._timings["hop"] = hopped.ms
        return hopped.ranking, hopped.hop

    def _cached(self, q: QueryInput, retrieved: RetrieveOutput) -> QueryOutput:
        assert retrieved.cached_answer is not None
        served = {  # what this request cost and took, not what the answer first did
            "request_id": q.request_id,
            "cache": "semantic",
            "cached_question": retrieved.cached_question,
            "timings_ms": self._timings,
            "tokens_in": 0,
            "tokens_out": 0,
            "cost_usd": 0.0,
            "question_pii": q.question_pii,
            "generation": retrieved.generation,
        }
        return query_output({**retrieved.cached_answer, **served})

    def _answer(
        self,
        q: QueryInput,
        retrieved: RetrieveOutput,
        context: ContextOutput,
        generated: GenerateOutput,
        validated: ValidateOutput,
    ) -> QueryOutput:
        if any(a.outcome != "ok" for a in generated.attempts):
            self._degraded.append("provider_fallback")
        if generated.regrounded:  # the tenant's grounding policy replaced an ungrounded answer
            self._degraded.append(f"ungrounded_{generated.regrounded}")
        if validated.citations_from in ("attributed", "mixed"):  # the model's own were missing or wrong
            self._degraded.append("citations_attributed")
        if "ungrounded" in validated.flags:
            self._degraded.append("ungrounded")
        return QueryOutput(
            request_id=q.request_id,
            answer=validated.text,
            citations=validated.citations,
            degradations=self._degraded,
            timings_ms=self._timings,
            route=generated.route,
            provider=generated.provider,
            model=generated.model,
            prompt_id=generated.prompt_id,
            prompt_hash=generated.prompt_hash,
            tokens_in=generated.tokens_in,
            tokens_out=generated.tokens_out,
            cost_usd=generated.cost_usd,
            embedding_version=retrieved.embedding_version,
            supported_rate=validated.supported_rate,
            json_value=validated.json_value,
            json_error=validated.json_error,
            no_sources=not context.passages,
            clarifying=generated.clarifying,
            attempts=generated.attempts,
            question_pii=q.question_pii,
            generation=retrieved.generation,
            cache="snippet" if retrieved.snippet else "miss",
            prompt_label=q.prompt_label,
            citations_from=validated.citations_from,
            first_token_ms=generated.first_token_ms,
            flags=[*q.flags, *(["sources_injection"] if context.sources_flagged else []), *validated.flags],
        )


def _context_input(q: QueryInput, retrieved: RetrieveOutput, ranking: str) -> ContextInput:
    return ContextInput(
        tenant=q.tenant,
        question=q.question,
        candidates_key=retrieved.candidates_key,
        ranking=ranking,
        token_budget=q.context_tokens or 0,
        request_id=q.request_id,
        stream=q.stream,
        embedding_version=retrieved.embedding_version,
        sources_policy=q.guard_sources,
        schema_chars=len(json.dumps(q.json_schema)) if q.json_schema is not None else 0,
    )


def generate_input(q: QueryInput, retrieved: RetrieveOutput, context: ContextOutput, budget_ms: float) -> GenerateInput:
    return GenerateInput(
        embedding_version=retrieved.embedding_version,
        request_id=q.request_id,
        tenant=q.tenant,
        question=q.question,
        passages=context.passages,
        confidence=context.confidence,
        response_format=q.response_format,
        json_schema=q.json_schema,
        route=q.route,
        stream=q.stream,
        max_output_tokens=q.max_output_tokens,
        deadline_ms=budget_ms,
        prompt_id=q.prompt_id,
        quote_question="question_injection" not in q.flags,
        grounding=q.guard_grounding,
        moderation=q.guard_moderation,
        severe=q.guard_severe,
    )


def _no_retrieval() -> RetrieveOutput:
    return RetrieveOutput(candidates_key="", ranking="", count=0, top=[], generation=0, embedding_version="")


def _no_context() -> ContextOutput:
    return ContextOutput(passages=[], tokens=0, dropped_duplicates=0, dropped_over_budget=0, confidence=0.0)
