"""Keel's errors reach Temporal with their code and whether a retry can help."""

from __future__ import annotations

import pytest
import redis
from temporalio.exceptions import ApplicationError

from activities.errors import mapped
from keel.errors import CorruptFile, VectorStoreUnavailable


def _raises(exc: BaseException) -> None:
    @mapped
    def step() -> None:
        raise exc

    step()


def test_bad_input_is_not_retried() -> None:
    with pytest.raises(ApplicationError) as caught:
        _raises(CorruptFile("not a PDF"))
    assert caught.value.type == "corrupt_file" and caught.value.non_retryable


def test_an_outage_is_retried() -> None:
    with pytest.raises(ApplicationError) as caught:
        _raises(VectorStoreUnavailable("down"))
    assert caught.value.type == "vector_store_unavailable" and not caught.value.non_retryable


def test_a_lost_redis_connection_is_named_and_retried() -> None:
    with pytest.raises(ApplicationError) as caught:
        _raises(redis.exceptions.ConnectionError("refused"))
    assert caught.value.type == "redis_unavailable" and not caught.value.non_retryable


def test_anything_else_is_left_as_it_is() -> None:
    with pytest.raises(KeyError):
        _raises(KeyError("a bug"))
