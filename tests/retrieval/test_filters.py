"""A query's filter: the caller's visibility always, its own filters checked and added on top."""

from __future__ import annotations

import math

import pytest

from contracts.query import QueryFilters
from keel.errors import BadInput
from retrieval.filters import MAX_FILTER_VALUES, check_filters, query_where


def test_tenant_groups_and_generation_are_always_in_the_filter() -> None:
    where = query_where("acme", 7, ["hr"], QueryFilters())
    keys = {c.key for c in where.must}
    assert "tenant" in keys and any(c.value == "acme" for c in where.must if c.key == "tenant")


def test_the_callers_filters_are_added_never_replacing_visibility() -> None:
    base = query_where("acme", 7, [], QueryFilters())
    narrowed = query_where("acme", 7, [], QueryFilters(sources=["a.pdf"], ingested_after=1.0))
    assert narrowed.must[: len(base.must)] == base.must
    assert {c.key for c in narrowed.must[len(base.must) :]} == {"source", "ingested_at"}


def test_flagged_chunks_are_left_out_when_the_policy_excludes_them() -> None:
    where = query_where("acme", 7, [], QueryFilters(), exclude_flagged=True)
    assert any(c.key == "injection_flag" for c in where.must_not)


@pytest.mark.parametrize(
    "bad",
    [
        QueryFilters(sources=["x"] * (MAX_FILTER_VALUES + 1)),
        QueryFilters(doc_ids=[""]),
        QueryFilters(sources=["\ud800"]),
        QueryFilters(ingested_after=math.inf),
        QueryFilters(ingested_after=5.0, ingested_before=5.0),
    ],
)
def test_bad_filters_are_a_400_with_a_code(bad: QueryFilters) -> None:
    with pytest.raises(BadInput) as refused:  # invalid_filter, or invalid_text for a lone surrogate
        check_filters(bad)
    assert refused.value.http_status == 400 and refused.value.code in ("invalid_filter", "invalid_text")
