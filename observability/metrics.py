"""Prometheus metrics: one registry per process, served on a port of its own (operators only).

Metrics carry every tenant's name, so they are not on the API's port, where a tenant's key
would read its neighbours': `infra.server` and `infra.worker` serve them on 127.0.0.1 at
`KEEL_METRICS_PORT` (0: off). The Temporal SDK's own worker metrics come from its runtime, on
`KEEL_TEMPORAL_METRICS_PORT` (see temporal/client.py). Names follow the OpenTelemetry GenAI
conventions where they exist (`gen_ai.client.token.usage`, `gen_ai.client.operation.duration`,
dots as underscores).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

REGISTRY = CollectorRegistry()

_MS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

HTTP_REQUESTS = Counter(
    "keel_http_requests",
    "HTTP requests by route, method, status and tenant",
    ["route", "method", "status", "tenant"],
    registry=REGISTRY,
)
QUERY_STEP = Histogram(
    "keel_query_step_duration_seconds", "Time in each query step", ["step"], buckets=_MS_BUCKETS, registry=REGISTRY
)
QUERY = Histogram(
    "keel_query_duration_seconds",
    "A query from admission to answer",
    ["tenant"],
    buckets=_MS_BUCKETS,
    registry=REGISTRY,
)
CANCELLED_STEPS = Counter(
    "keel_activity_cancelled", "Activities stopped mid-run (timed out or cancelled)", ["activity"], registry=REGISTRY
)
DEGRADATIONS = Counter("keel_query_degradations", "Degraded answers by kind", ["kind"], registry=REGISTRY)
CACHE = Counter(
    "keel_cache_lookups",
    "Answer-cache lookups by layer and outcome (hit, miss, skipped)",
    ["layer", "outcome"],
    registry=REGISTRY,
)
FEEDBACK = Counter(
    "keel_feedback",
    "Feedback on answers by rating and where the answer came from",
    ["rating", "cache"],
    registry=REGISTRY,
)
ADMISSION_REFUSALS = Counter(
    "keel_admission_refusals", "Queries refused at this process's capacity (503 overloaded)", registry=REGISTRY
)
LIMITER = Counter(
    "keel_limiter_decisions", "Rate-limit decisions by outcome and policy", ["decision", "policy"], registry=REGISTRY
)
BREAKER = Gauge(
    "keel_provider_breaker_state",
    "A provider's breaker as last seen: 0 closed, 1 half-open, 2 open",
    ["provider"],
    registry=REGISTRY,
)
TOKENS = Histogram(
    "gen_ai_client_token_usage",
    "Tokens per generation by type (input/output), model and tenant",
    ["gen_ai_token_type", "gen_ai_request_model", "tenant"],
    buckets=(16, 64, 256, 1024, 4096, 16384),
    registry=REGISTRY,
)
GENERATION = Histogram(
    "gen_ai_client_operation_duration_seconds",
    "A generation call, by provider and model",
    ["gen_ai_operation_name", "gen_ai_system", "gen_ai_request_model"],
    buckets=_MS_BUCKETS,
    registry=REGISTRY,
)
COST = Counter("keel_cost_usd", "Spend by tenant and model", ["tenant", "gen_ai_request_model"], registry=REGISTRY)
INGEST_FILES = Counter(
    "keel_ingest_files", "Files finished by ingest jobs, by outcome", ["status", "tenant"], registry=REGISTRY
)
INGEST_CHUNKS = Counter("keel_ingest_chunks", "Chunks stored by ingest jobs", ["tenant"], registry=REGISTRY)


def serve(port: int) -> None:
    """Serve this process's metrics on 127.0.0.1:`port` (no-op for 0)."""
    if port:
        start_http_server(port, addr="127.0.0.1", registry=REGISTRY)
