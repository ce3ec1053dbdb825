"""One query's working state: rankings, candidates and the question's vector, read back as written, then dropped."""

from __future__ import annotations

import uuid

import numpy as np
import redis

from contracts.query import Candidate, Scored
from stores import query_state
from stores.keys import query_candidates_key


def _candidate(pid: str) -> Candidate:
    return Candidate(
        point_id=pid,
        doc_id="d1",
        version="v1",
        source="s.md",
        title="T",
        section_path=["A"],
        chunk_index=0,
        text=f"text of {pid}",
        token_count=3,
        embedding_version="e1",
    )


def test_rankings_candidates_and_vector_read_back_as_written(redis_client: redis.Redis) -> None:
    rid = uuid.uuid4().hex
    key = query_candidates_key("acme", rid)
    scored = [Scored(point_id="p1", doc_id="d1", dense=0.9, fused=0.5), Scored(point_id="p2", doc_id="d1", fused=0.4)]
    vector = np.arange(4, dtype=np.float32)
    query_state.save(redis_client, key, "retrieve", scored, {"p1": _candidate("p1"), "p2": _candidate("p2")}, vector)
    query_state.save(redis_client, key, "rerank", list(reversed(scored)), {}, snippet="where")
    assert query_state.ranking(redis_client, key, "retrieve") == scored
    assert query_state.ranking_and_snippet(redis_client, key, "rerank") == (list(reversed(scored)), "where")
    assert query_state.final_ranking(redis_client, "acme", rid, "rerank") == list(reversed(scored))
    assert query_state.candidates(redis_client, key, ["p2", "missing"]) == {"p2": _candidate("p2")}
    got = query_state.question_vector(redis_client, "acme", rid)
    assert got is not None and np.array_equal(got, vector)
    records = query_state.all_candidates({str(k): str(v) for k, v in redis_client.hgetall(key).items()})
    assert sorted(r["point_id"] for r in records) == ["p1", "p2"]  # rankings and meta are not candidates
    assert redis_client.ttl(key) > 0


def test_drop_leaves_nothing_of_the_request(redis_client: redis.Redis) -> None:
    rid = uuid.uuid4().hex
    key = query_candidates_key("acme", rid)
    query_state.save(redis_client, key, "retrieve", [], {"p1": _candidate("p1")}, np.ones(2, dtype=np.float32))
    query_state.drop(redis_client, "acme", rid)
    assert query_state.ranking(redis_client, key, "retrieve") == []
    assert query_state.question_vector(redis_client, "acme", rid) is None
    assert query_state.candidates(redis_client, key, ["p1"]) == {}
