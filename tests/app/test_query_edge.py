"""What the edge keeps: only a whole answer made for this request."""

from __future__ import annotations

import pytest

from app.query_edge import cacheable
from contracts.query import QueryOutput


def _out(**changes: object) -> QueryOutput:
    fields: dict[str, object] = {
        "request_id": "r",
        "answer": "a",
        "citations": [],
        "degradations": [],
        "timings_ms": {},
        "generation": 3,
    }
    return QueryOutput(**{**fields, **changes})  # type: ignore[arg-type]


def test_a_whole_fresh_answer_is_kept() -> None:
    assert cacheable(_out())
    assert cacheable(_out(cache="snippet"))  # generated anew on kept rankings


@pytest.mark.parametrize(
    "changes",
    [
        {"cache": "exact"},
        {"cache": "semantic"},
        {"degradations": ["rerank_skipped"]},
        {"flags": ["output_blocked"]},
        {"json_error": "not an object"},
        {"generation": 0},  # nothing was published when it was read
    ],
)
def test_anything_less_is_not(changes: dict[str, object]) -> None:
    assert not cacheable(_out(**changes))
