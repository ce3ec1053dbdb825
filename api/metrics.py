"""What the API records per request in the process's metrics (observability.metrics)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contracts.query import QueryOutput
from observability import metrics


class CountRequests:
    """Requests by route template, method, status and tenant (plain ASGI, as `RequestIds`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # unless a response starts

        async def noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noting_status)
        finally:
            route = scope.get("route")
            principal = scope.get("state", {}).get("principal")
            metrics.HTTP_REQUESTS.labels(
                route=getattr(route, "path", "unmatched"),  # the template, never the raw path (ids in it)
                method=scope["method"],
                status=str(status),
                tenant=principal.tenant if principal is not None else "-",
            ).inc()


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
