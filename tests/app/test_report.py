"""The A/B report's arithmetic: rates, cost per successful answer, and confidence that says
"not significant" for small or equal arms."""

from __future__ import annotations

from typing import Any

from app.report import compare


def _rec(prompt: str, *, ok: bool = True, rating: str = "", ms: float = 100.0, cost: float = 0.001) -> dict[str, Any]:
    return {
        "prompt_id": prompt,
        "answered": ok,
        "degraded": False,
        "rating": rating,
        "ms": ms,
        "cost_usd": cost,
        "json_error": False,
    }


def _line(lines: list[Any], metric: str) -> Any:
    return next(x for x in lines if x.metric == metric)


def test_a_clear_difference_is_significant_and_cost_counts_only_successes() -> None:
    recs = [_rec("a.v1") for _ in range(200)] + [_rec("b.v1", rating="down" if i % 2 else "") for i in range(200)]
    lines = compare(recs, "prompt", "a.v1", "b.v1")
    success = _line(lines, "success rate")
    assert (success.a, success.b) == (1.0, 0.5) and success.confidence == "significant"
    per_success = _line(lines, "cost per successful answer usd")
    assert round(per_success.a, 6) == 0.001 and round(per_success.b, 6) == 0.002


def test_equal_or_tiny_arms_are_not_called_different() -> None:
    recs = [_rec("a.v1", ms=100 + i % 7) for i in range(50)] + [_rec("b.v1", ms=100 + i % 7) for i in range(50)]
    lines = compare(recs, "prompt", "a.v1", "b.v1")
    assert all(x.confidence in ("not significant", "-") for x in lines)
    tiny = compare([_rec("a.v1"), _rec("b.v1", ok=False)], "prompt", "a.v1", "b.v1")
    assert _line(tiny, "success rate").p_value is None
