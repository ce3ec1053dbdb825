"""QueryWorkflow: retrieve -> rerank -> context -> generate -> validate, each step on a budget.

Every step is a local activity with a deadline from `policies.QUERY_BUDGETS_MS`. A step that
fails or runs out of time degrades the answer instead of failing the query, and the degradation
is recorded on it: no retrieval is a "no sources" answer, a late rerank keeps the retrieval
order, a failed generation returns the best passage, a failed validation returns the answer
without checked citations. Its id is `query/<tenant>/<request id>`.
"""

from __future__ import annotations

from temporalio import workflow

# A failed local activity can surface as ActivityError or as its cause (ApplicationError,
# TimeoutError); FailureError is their common base: any of them degrades the step.
from temporalio.exceptions import FailureError

from workflows import policies
from workflows.policies import query_step

with workflow.unsafe.imports_passed_through():
    from activities.query import QueryActivities
    from keel.query_contracts import (
        ContextInput,
        ContextOutput,
        GenerateInput,
        GenerateOutput,
        QueryInput,
        QueryOutput,
        RerankInput,
        RetrieveInput,
        RetrieveOutput,
        ValidateInput,
        ValidateOutput,
    )

STEP_GRACE_MS = 200  # rerank and generate stop themselves at their deadline; the timeout is the backstop


@workflow.defn(name="Query", sandboxed=False)
class QueryWorkflow:
    @workflow.run
    async def run(self, q: QueryInput) -> QueryOutput:
        budget = policies.query_budgets(q.budgets_ms)
        degraded: list[str] = []
        timings: dict[str, float] = {}

        try:
            retrieved = await query_step(QueryActivities.retrieve, RetrieveInput(q), budget["retrieve"])
        except FailureError:  # the step failed or ran out of time: degrade
            degraded.append("retrieve_failed")
            retrieved = RetrieveOutput("", "", 0, [], 0, "")
        timings["retrieve"] = retrieved.ms
        ranking = retrieved.ranking

        if q.rerank and retrieved.count > 1:
            try:
                reranked = await query_step(
                    QueryActivities.rerank,
                    RerankInput(q.question, retrieved.candidates_key, ranking, budget["rerank"]),
                    budget["rerank"] + STEP_GRACE_MS,
                    retry=policies.NO_RETRY,
                )
                ranking = reranked.ranking
                timings["rerank"] = reranked.ms
            except FailureError:  # the step failed or ran out of time: degrade
                degraded.append("rerank_skipped")

        if not q.answer:  # retrieval only (evaluation)
            return QueryOutput(
                q.request_id, "", [], degraded, timings, embedding_version=retrieved.embedding_version, ranking=ranking
            )

        try:
            context = await query_step(
                QueryActivities.context,
                ContextInput(
                    q.tenant,
                    q.question,
                    retrieved.candidates_key,
                    ranking,
                    q.context_tokens or 0,
                    q.request_id,
                    q.stream,
                ),
                budget["context"],
            )
        except FailureError:  # the step failed or ran out of time: degrade
            degraded.append("context_failed")
            context = ContextOutput([], 0, 0, 0, 0.0)
        timings["context"] = context.ms

        try:
            generated = await query_step(
                QueryActivities.generate,
                GenerateInput(
                    q.request_id,
                    q.tenant,
                    q.question,
                    context.passages,
                    context.confidence,
                    q.response_format,
                    q.json_schema,
                    q.route,
                    q.stream,
                    q.max_output_tokens,
                    budget["generate"],
                ),
                budget["generate"] + STEP_GRACE_MS,
                retry=policies.NO_RETRY,
            )
        except FailureError:  # the step failed or ran out of time: degrade
            degraded.append("generate_failed")
            generated = _best_passage(context)
        timings["generate"] = generated.ms
        if any(a.outcome != "ok" for a in generated.attempts):
            degraded.append("provider_fallback")

        try:
            validated = await query_step(
                QueryActivities.validate,
                ValidateInput(
                    q.question,
                    generated.text,
                    context.passages,
                    generated.prompt_id,
                    q.response_format,
                    q.json_schema,
                    generated.clarifying,
                ),
                budget["validate"],
            )
        except FailureError:  # the step failed or ran out of time: degrade
            degraded.append("validate_skipped")
            validated = ValidateOutput(generated.text, [], 0.0)
        timings["validate"] = validated.ms

        return QueryOutput(
            request_id=q.request_id,
            answer=validated.text,
            citations=validated.citations,
            degradations=degraded,
            timings_ms=timings,
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
        )


def _best_passage(context: ContextOutput) -> GenerateOutput:
    """Generation failed outright: the best passage, cited, is still a grounded answer."""
    if not context.passages:
        return GenerateOutput("No answer could be generated.", "fallback", "", "", "", "", 0, 0, 0.0, clarifying=True)
    best = context.passages[0]
    return GenerateOutput(f"{best.text} [{best.ref}]", "fallback", "passage", "", "", "", 0, 0, 0.0)
