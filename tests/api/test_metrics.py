"""The process's Prometheus metrics after real requests: routes by template, steps, tokens, refusals."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import generate_latest

from infra.services import free_port
from observability import metrics
from tests.api.conftest import Auth

pytestmark = [pytest.mark.stack, pytest.mark.usefixtures("worker")]


def _value(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_query_is_counted_by_route_step_and_tokens(api: httpx.AsyncClient, sampled: str, auth: Auth) -> None:
    before = _value("keel_http_requests_total", route="/v1/query", method="POST", status="200", tenant=sampled)
    steps_before = _value("keel_query_step_duration_seconds_count", step="retrieve")
    resp = await api.post("/v1/query", json={"question": "How do I retry failed files?"}, headers=auth(sampled))
    assert resp.status_code == 200
    assert (
        _value("keel_http_requests_total", route="/v1/query", method="POST", status="200", tenant=sampled) == before + 1
    )
    assert _value("keel_query_step_duration_seconds_count", step="retrieve") == steps_before + 1
    model = resp.json()["model"] or resp.json()["provider"]
    tokens = _value(
        "gen_ai_client_token_usage_sum", gen_ai_token_type="input", gen_ai_request_model=model, tenant=sampled
    )
    assert tokens >= resp.json()["tokens_in"] > 0
    # Every tenant has limits (its own or the deployment's default): admitted as limited.
    assert _value("keel_limiter_decisions_total", decision="admitted", policy="limited") >= 1

    await api.get("/v1/jobs/20260101-000000-abcdef", headers=auth(sampled))  # an id in the path
    text = generate_latest(metrics.REGISTRY).decode()
    assert 'route="/v1/jobs/{job_id}"' in text and "20260101-000000-abcdef" not in text


def test_metrics_are_served_on_their_own_port() -> None:
    port = free_port()
    metrics.serve(port)
    body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert "keel_http_requests_total" in body and "gen_ai_client_operation_duration_seconds" in body
