"""A query's filter: what the caller may see (tenant, groups, generation) plus what it asked for."""

from __future__ import annotations

import math

from contracts.query import QueryFilters
from index.visibility import visible_at
from keel.errors import InvalidFilter
from keel.text import check_text
from vectorstore.base import Cond, Where

MAX_FILTER_VALUES = 100


def check_filters(f: QueryFilters) -> QueryFilters:
    for name, values in (("sources", f.sources), ("doc_ids", f.doc_ids)):
        if len(values) > MAX_FILTER_VALUES:
            raise InvalidFilter(f"filters.{name} has {len(values)} values; at most {MAX_FILTER_VALUES}")
        if any(not isinstance(v, str) or not v or len(v) > 1024 for v in values):
            raise InvalidFilter(f"filters.{name} must be non-empty strings of at most 1024 characters")
        for v in values:
            check_text(v, f"filters.{name}")
    for name, bound in (("ingested_after", f.ingested_after), ("ingested_before", f.ingested_before)):
        if bound is not None and not math.isfinite(bound):
            raise InvalidFilter(f"filters.{name} must be a finite number of unix seconds, not {bound}")
    if f.ingested_after is not None and f.ingested_before is not None and f.ingested_after >= f.ingested_before:
        raise InvalidFilter("filters.ingested_after must be before filters.ingested_before")
    return f


def query_where(
    tenant: str, generation: int, groups: list[str], f: QueryFilters, *, exclude_flagged: bool = False
) -> Where:
    """Tenant, access groups and the published generation always; the request's filters on top;
    with `exclude_flagged`, no chunk that reads as instructions to the model (the tenant's policy)."""
    where = visible_at(tenant, generation, groups)
    if exclude_flagged:
        where = Where(must=where.must, must_not=(*where.must_not, Cond("injection_flag", value=True)))
    extra: list[Cond] = []
    if f.sources:
        extra.append(Cond("source", any=tuple(f.sources)))
    if f.doc_ids:
        extra.append(Cond("doc_id", any=tuple(f.doc_ids)))
    if f.ingested_after is not None or f.ingested_before is not None:
        extra.append(Cond("ingested_at", gte=f.ingested_after, lt=f.ingested_before))
    return where.and_(*extra)
