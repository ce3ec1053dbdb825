"""One query's working state in Redis: its candidates and each step's ranking of them.

A hash per request (`keel:q:<tenant>:<request id>:candidates`): point id -> candidate JSON,
`ranking:<step>` -> the step's order with every score, `meta:vector` -> the question's embedding
(float32, base64), which the answer cache keeps with the answer (it is computed once), and
`meta:snippet` -> where the snippet cache keeps the rankings. It expires after QUERY_STATE_TTL_S,
long enough for a retried step, short enough not to keep tenant text around; the edge drops it as
soon as the answer is delivered (`drop`), so passage text does not outlive its request.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import redis

from contracts.query import Candidate, Scored
from stores.keys import QUERY_STATE_TTL_S, query_candidates_key, query_stream_key

HISTORY_TOP = 5  # scores of the best few go into the workflow history too
VECTOR = "meta:vector"
SNIPPET = "meta:snippet"  # where the request's snippet is kept once re-scored (`caches.snippets`)
_NOT_CANDIDATES = ("ranking:", "meta:")


def save(
    r: redis.Redis,
    key: str,
    ranking: str,
    scored: Sequence[Scored],
    candidates: dict[str, Candidate],
    vector: np.ndarray | None = None,
    snippet: str | None = None,
) -> None:
    """One step's ranking and the candidates it added (a step of its own, as older histories ran)."""
    keep(r, key, {ranking: scored}, candidates, vector, snippet)


def keep(
    r: redis.Redis,
    key: str,
    rankings: Mapping[str, Sequence[Scored]],
    candidates: dict[str, Candidate],
    vector: np.ndarray | None = None,
    snippet: str | None = None,
    text: bool = True,
) -> None:
    """A request's whole state in one write: its rankings, candidates, vector and snippet key;
    without `text`, the candidates' records hold everything but their passages'."""
    fields = {f"ranking:{name}": _ranking(scored) for name, scored in rankings.items()}
    if vector is not None:
        fields[VECTOR] = _vector(vector)
    if snippet is not None:
        fields[SNIPPET] = snippet
    _write(r, key, fields, candidates if text else {pid: replace(c, text="") for pid, c in candidates.items()})


def _vector(vector: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vector, dtype=np.float32).tobytes()).decode()


def _ranking(scored: Sequence[Scored]) -> str:
    return json.dumps([vars(s) for s in scored])


def _write(r: redis.Redis, key: str, fields: dict[str, str], candidates: dict[str, Candidate]) -> None:
    # Both are flat dataclasses of JSON types: their __dict__ is the record. dataclasses.asdict
    # deep-copies field by field and was the costliest part of a query's own CPU (~12 ms a query).
    fields.update({pid: json.dumps(vars(c)) for pid, c in candidates.items()})
    pipe = r.pipeline()
    pipe.hset(key, mapping=fields)  # type: ignore[arg-type]  # redis' Mapping is invariant
    pipe.expire(key, QUERY_STATE_TTL_S)
    pipe.execute()


def ranking(r: redis.Redis, key: str, name: str) -> list[Scored]:
    raw = r.hget(key, f"ranking:{name}")
    return [Scored(**s) for s in json.loads(str(raw))] if raw else []


def ranking_and_snippet(r: redis.Redis, key: str, name: str) -> tuple[list[Scored], str | None]:
    """A ranking and where the request's snippet goes (None: it is not kept), in one round trip."""
    raw, snippet = r.hmget(key, [f"ranking:{name}", SNIPPET])
    return ([Scored(**s) for s in json.loads(str(raw))] if raw else []), (str(snippet) if snippet else None)


def final_ranking(r: redis.Redis, tenant: str, request_id: str, name: str) -> list[Scored]:
    """A finished query's ranking (evaluation reads it; it expires with the request's state)."""
    return ranking(r, query_candidates_key(tenant, request_id), name) if name else []


def candidates(r: redis.Redis, key: str, ids: Sequence[str]) -> dict[str, Candidate]:
    if not ids:
        return {}
    raw = r.hmget(key, list(ids))
    return {pid: Candidate(**json.loads(v)) for pid, v in zip(ids, raw, strict=True) if v is not None}


def question_vector(r: redis.Redis, tenant: str, request_id: str) -> np.ndarray | None:
    raw = r.hget(query_candidates_key(tenant, request_id), VECTOR)
    return np.frombuffer(base64.b64decode(str(raw)), dtype=np.float32) if raw else None


def all_candidates(raw: dict[str, str]) -> list[dict[str, Any]]:
    """The candidate records of a request's whole state (`HGETALL`), without its rankings and meta."""
    return [json.loads(v) for k, v in raw.items() if not k.startswith(_NOT_CANDIDATES)]


def drop(r: redis.Redis, tenant: str, request_id: str) -> None:
    """A finished query's working state and event stream: nothing will read them again."""
    r.delete(query_candidates_key(tenant, request_id), query_stream_key(tenant, request_id))
