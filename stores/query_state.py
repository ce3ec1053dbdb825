"""One query's working state in Redis: its candidates and each step's ranking of them.

A hash per request (`keel:q:<tenant>:<request id>:candidates`): point id -> candidate JSON, and
`ranking:<step>` -> the step's order with every score. It expires after QUERY_STATE_TTL_S, long
enough for a retried step, short enough not to keep tenant text around; the edge drops it as
soon as the answer is delivered (`drop`), so passage text does not outlive its request.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import redis

from contracts.query import Candidate, Scored
from stores.keys import QUERY_STATE_TTL_S, query_candidates_key, query_stream_key

HISTORY_TOP = 5  # scores of the best few go into the workflow history too


def save(r: redis.Redis, key: str, ranking: str, scored: Sequence[Scored], candidates: dict[str, Candidate]) -> None:
    # Both are flat dataclasses of JSON types: their __dict__ is the record. dataclasses.asdict
    # deep-copies field by field and was the costliest part of a query's own CPU (~12 ms a query).
    fields = {pid: json.dumps(vars(c)) for pid, c in candidates.items()}
    fields[f"ranking:{ranking}"] = json.dumps([vars(s) for s in scored])
    pipe = r.pipeline()
    pipe.hset(key, mapping=fields)  # type: ignore[arg-type]  # redis' Mapping is invariant
    pipe.expire(key, QUERY_STATE_TTL_S)
    pipe.execute()


def ranking(r: redis.Redis, key: str, name: str) -> list[Scored]:
    raw = r.hget(key, f"ranking:{name}")
    return [Scored(**s) for s in json.loads(str(raw))] if raw else []


def final_ranking(r: redis.Redis, tenant: str, request_id: str, name: str) -> list[Scored]:
    """A finished query's ranking (evaluation reads it; it expires with the request's state)."""
    return ranking(r, query_candidates_key(tenant, request_id), name) if name else []


def candidates(r: redis.Redis, key: str, ids: Sequence[str]) -> dict[str, Candidate]:
    if not ids:
        return {}
    raw = r.hmget(key, list(ids))
    return {pid: Candidate(**json.loads(v)) for pid, v in zip(ids, raw, strict=True) if v is not None}


def drop(r: redis.Redis, tenant: str, request_id: str) -> None:
    """A finished query's working state and event stream: nothing will read them again."""
    r.delete(query_candidates_key(tenant, request_id), query_stream_key(tenant, request_id))
