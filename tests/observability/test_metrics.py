"""The metrics an operator scrapes: named as documented, labelled, exposed in Prometheus's format."""

from __future__ import annotations

from prometheus_client import generate_latest

from observability import metrics


def test_degradations_and_refusals_are_counted_by_kind() -> None:
    metrics.DEGRADATIONS.labels(kind="rerank_skipped").inc()
    metrics.ADMISSION_REFUSALS.inc()
    text = generate_latest(metrics.REGISTRY).decode()
    assert 'keel_query_degradations_total{kind="rerank_skipped"}' in text
    assert "keel_admission_refusals_total" in text


def test_generation_uses_the_opentelemetry_genai_names() -> None:
    text = generate_latest(metrics.REGISTRY).decode()
    for name in (
        "gen_ai_client_operation_duration_seconds",
        "gen_ai_client_token_usage",
        "keel_query_step_duration_seconds",
    ):
        assert f"# HELP {name}" in text
