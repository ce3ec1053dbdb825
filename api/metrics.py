"""What the API records per request in the process's metrics (observability.metrics)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request
from starlette.responses import Response

from contracts.query import QueryOutput
from observability import metrics


async def count_requests(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    response = await call_next(request)
    route = request.scope.get("route")
    principal = getattr(request.state, "principal", None)
    metrics.HTTP_REQUESTS.labels(
        route=getattr(route, "path", "unmatched"),  # the template, never the raw path (ids in it)
        method=request.method,
        status=str(response.status_code),
        tenant=principal.tenant if principal is not None else "-",
    ).inc()
    return response


def record_answer(tenant: str, out: QueryOutput, seconds: float) -> None:
    metrics.QUERY.labels(tenant=tenant).observe(seconds)
    for step, ms in out.timings_ms.items():
        metrics.QUERY_STEP.labels(step=step).observe(ms / 1000)
    for kind in out.degradations:
        metrics.DEGRADATIONS.labels(kind=kind).inc()
    model = out.model or out.provider or "none"
    if out.tokens_in or out.tokens_out:
        metrics.TOKENS.labels(gen_ai_token_type="input", gen_ai_request_model=model, tenant=tenant).observe(
            out.tokens_in
        )
        metrics.TOKENS.labels(gen_ai_token_type="output", gen_ai_request_model=model, tenant=tenant).observe(
            out.tokens_out
        )
    if out.cost_usd:
        metrics.COST.labels(tenant=tenant, gen_ai_request_model=model).inc(out.cost_usd)
