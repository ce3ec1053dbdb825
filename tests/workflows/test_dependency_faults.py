"""An unreachable dependency is a retryable, coded failure, never a crash or a silent loss."""

from __future__ import annotations

import pytest
import redis
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.errors import mapped
from encoders.sparse import SparseEncoder
from keel.errors import VectorStoreUnavailable
from vectorstore.base import ChunkPoint
from vectorstore.server import ServerStore


def test_unreachable_qdrant_server_is_a_retryable_coded_error() -> None:
    store = ServerStore(url="http://127.0.0.1:1", timeout=1)
    point = ChunkPoint(
        "00000000-0000-0000-0000-000000000001", [0.1] * 4, SparseEncoder().document([1], avg_len=1.0), {}
    )
    with pytest.raises(VectorStoreUnavailable):
        store.ensure_collection("c", 4)
    store._known.add("c")
    with pytest.raises(VectorStoreUnavailable):
        store.upsert("c", [point])


def test_activity_errors_map_to_temporal_retry_semantics() -> None:
    @mapped
    def upsert() -> None:
        raise VectorStoreUnavailable("Qdrant at http://127.0.0.1:1 is unreachable")

    @mapped
    def read_redis() -> None:
        redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2).ping()

    env = ActivityEnvironment()
    with pytest.raises(ApplicationError) as qdrant:
        env.run(upsert)
    assert qdrant.value.type == "vector_store_unavailable" and not qdrant.value.non_retryable
    with pytest.raises(ApplicationError) as red:
        env.run(read_redis)
    assert red.value.type == "redis_unavailable" and not red.value.non_retryable
