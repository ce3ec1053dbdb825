"""A circuit breaker per provider, its state in Redis so every worker shares it.

closed: calls go through; `failure_threshold` consecutive failures open it.
open: calls are refused at once (`breaker_open`) for `reset_after_s`.
half-open: after that, one caller at a time gets a trial call (a short-lived Redis lock decides
who); its success closes the breaker, its failure opens it for another `reset_after_s`.
If Redis itself is unreachable the breaker fails open (allows calls): losing the breaker must
not take generation down with it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis

from observability import metrics
from stores.keys import breaker_key, breaker_trial_key

log = logging.getLogger("keel.breaker")

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
_GAUGE = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}  # keel_provider_breaker_state


@dataclass(frozen=True)
class BreakerConfig:
    failure_threshold: int = 3
    reset_after_s: float = 30.0
    trial_timeout_s: float = 30.0  # a trial holder that dies frees the slot after this


class Breaker:
    def __init__(self, client: redis.Redis, config: BreakerConfig) -> None:
        self.r = client
        self.config = config

    def state(self, provider: str) -> str:
        try:
            raw = self.r.hget(breaker_key(provider), "opened_at")
        except redis.RedisError as exc:  # fails open: a provider is tried rather than refused
            log.warning("breaker state of %s unread (Redis: %s): treated as closed", provider, exc)
            return CLOSED
        state = CLOSED
        if raw is not None:
            state = OPEN if time.time() - float(raw) < self.config.reset_after_s else HALF_OPEN
        metrics.BREAKER.labels(provider=provider).set(_GAUGE[state])
        return state

    def allow(self, provider: str) -> bool:
        """May this caller try the provider now? (In half-open, only the caller that wins the trial.)"""
        state = self.state(provider)
        if state == CLOSED:
            return True
        if state == OPEN:
            return False
        try:
            ttl_ms = int(self.config.trial_timeout_s * 1000)
            return bool(self.r.set(breaker_trial_key(provider), "1", nx=True, px=ttl_ms))
        except redis.RedisError as exc:
            log.warning("breaker trial of %s not claimed (Redis: %s): trying it", provider, exc)
            return True

    def success(self, provider: str) -> None:
        try:
            pipe = self.r.pipeline()
            pipe.delete(breaker_key(provider), breaker_trial_key(provider))
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("breaker of %s not reset (Redis: %s)", provider, exc)

    def failure(self, provider: str) -> None:
        key = breaker_key(provider)
        try:
            failures = int(self.r.hincrby(key, "failures", 1))
            half_open = self.state(provider) == HALF_OPEN
            if half_open or failures >= self.config.failure_threshold:
                pipe = self.r.pipeline()
                pipe.hset(key, "opened_at", time.time())
                pipe.delete(breaker_trial_key(provider))
                pipe.execute()
        except redis.RedisError as exc:
            log.warning("failure of %s not counted by its breaker (Redis: %s)", provider, exc)
