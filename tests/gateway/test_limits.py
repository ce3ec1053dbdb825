"""The limiter against a real Redis: each limit admits what it should, refuses the rest with when
to come back, and holds across several processes' clients at once."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from gateway.limits import Limiter, Limits, Scope
from infra.services import free_port
from keel.config import Settings
from keel.errors import ExceedsLimit, LimiterUnavailable, RateLimited
from stores import redis as redis_store


def _key(limits: Limits) -> list[Scope]:
    return [Scope(name="key", id=uuid.uuid4().hex[:12], tenant="acme", limits=limits)]


def _rid() -> str:
    return uuid.uuid4().hex


def test_requests_a_minute_allow_a_burst_then_say_when(redis_client: redis.Redis) -> None:
    limiter, scopes = Limiter(redis_client), _key(Limits(rpm=60))
    for _ in range(10):  # BURST_S = 10 seconds' worth at once
        limiter.admit(_rid(), scopes, 0)
    with pytest.raises(RateLimited) as refused:
        limiter.admit(_rid(), scopes, 0)
    assert refused.value.policy == "key-rpm" and 0 < (refused.value.retry_after_s or 0) <= 1.0
    assert '"key-rpm";q=60;w=60' in refused.value.headers["RateLimit-Policy"]


def test_tokens_are_reserved_then_settled_to_what_was_used(redis_client: redis.Redis) -> None:
    limiter, scopes = Limiter(redis_client), _key(Limits(tpm=1000))
    first = limiter.admit(_rid(), scopes, 600)
    with pytest.raises(RateLimited) as refused:
        limiter.admit(_rid(), scopes, 600)
    assert refused.value.policy == "key-tpm"
    limiter.settle(first, tokens_used=100, cost_usd=0.0)  # 500 of the reservation come back
    limiter.admit(_rid(), scopes, 600)
    with pytest.raises(ExceedsLimit):  # more than a whole minute's worth: waiting cannot help
        limiter.admit(_rid(), scopes, 1001)


def test_concurrency_and_the_monthly_budget(redis_client: redis.Redis) -> None:
    limiter = Limiter(redis_client)
    one = _key(Limits(concurrent=1))
    running = limiter.admit(_rid(), one, 0)
    with pytest.raises(RateLimited, match="at once"):
        limiter.admit(_rid(), one, 0)
    limiter.settle(running, 0, 0.0)
    limiter.admit(_rid(), one, 0)

    budget = _key(Limits(budget_usd=0.01))
    spent = limiter.admit(_rid(), budget, 0)
    limiter.settle(spent, 0, cost_usd=0.02)
    with pytest.raises(RateLimited) as refused:
        limiter.admit(_rid(), budget, 0)
    assert refused.value.policy == "key-budget" and (refused.value.retry_after_s or 0) > 0


def test_a_tenant_limit_is_shared_by_its_keys(redis_client: redis.Redis, tenant: str) -> None:
    limiter = Limiter(redis_client)
    limiter.set_tenant_limits(tenant, Limits(rpm=6))  # a burst of one
    limiter.admit(_rid(), limiter.scopes("key-a", Limits(), tenant), 0)
    with pytest.raises(RateLimited) as refused:
        limiter.admit(_rid(), limiter.scopes("key-b", Limits(), tenant), 0)
    assert refused.value.policy == "tenant-rpm" and tenant in refused.value.message


def test_many_clients_in_many_processes_never_pass_the_limit(settings: Settings) -> None:
    """Two limiters on their own connections (as two API processes), 64 callers at once."""
    limiters = [Limiter(redis_store.connect(settings)) for _ in range(2)]
    scopes = _key(Limits(rpm=60, concurrent=8))

    def call(i: int) -> bool:
        try:
            limiters[i % 2].admit(_rid(), scopes, 0)
        except RateLimited:
            return False
        return True

    with ThreadPoolExecutor(max_workers=64) as pool:
        admitted = sum(pool.map(call, range(64)))
    assert admitted == 8  # the concurrency cap binds before the burst of 10 does


def test_an_unreachable_redis_fails_closed_unless_told_otherwise(settings: Settings) -> None:
    dead = redis.Redis(port=free_port(), socket_connect_timeout=0.2, decode_responses=True)
    scopes = _key(Limits(rpm=60))
    with pytest.raises(LimiterUnavailable):
        Limiter(dead).admit(_rid(), scopes, 0)
    assert Limiter(dead, fail_open=True).admit(_rid(), scopes, 0).scopes == []
