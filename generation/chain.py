"""The provider chain: each link tried in turn within the step's budget; extractive is always last.

Per link: skipped while its breaker is open or its bulkhead is full (`LinkPolicy.max_in_flight`
calls from this process at once); otherwise up to `max_attempts` calls, each with its own deadline
(`LinkPolicy.attempt_timeout_s`, never past the time left) and, when streaming, a shorter one for
the first token: a hanging provider costs one attempt deadline, and its timeouts reach the breaker
as each one happens, so under concurrency it opens within about one deadline. A 5xx, a refused connection or a 429 is retried after a capped,
jittered backoff (or the server's Retry-After) when the budget allows; a timeout, a malformed
reply or a truncated stream moves straight on to the next link. Every attempt is recorded with
its reason. The extractive answerer needs no network and a few milliseconds, so a slice of the
budget is always kept for it: the chain cannot run out of time without an answer.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from contracts.query import ContextPassage, ProviderAttempt
from generation.breaker import Breaker
from generation.providers import Generation, GenerationRequest, OnToken, Provider, ProviderError
from observability import metrics

log = logging.getLogger("keel.generation")

RETRYABLE = ("http_500", "http_502", "http_503", "http_504", "rate_limited", "connection_error")
EXTRACTIVE_RESERVE_S = 0.05


@dataclass(frozen=True)
class RetryConfig:
    max_attempts: int = 2
    base_backoff_s: float = 0.2
    max_backoff_s: float = 2.0


@dataclass(frozen=True)
class LinkPolicy:
    attempt_timeout_s: float | None = None  # None: whatever the step's budget leaves
    first_token_timeout_s: float | None = None
    max_in_flight: int | None = None  # None: no bulkhead


class Bulkhead:
    """A cap on one provider's calls in flight from this process; a full one is skipped, not waited on."""

    def __init__(self, limit: int | None) -> None:
        self._slots = threading.BoundedSemaphore(limit) if limit else None

    def enter(self) -> bool:
        return self._slots is None or self._slots.acquire(blocking=False)

    def leave(self) -> None:
        if self._slots is not None:
            self._slots.release()


@dataclass
class ChainResult:
    generation: Generation
    provider: Provider
    attempts: list[ProviderAttempt]


class ProviderChain:
    def __init__(
        self,
        providers: dict[str, Provider],
        last_resort: Provider,
        breaker: Breaker,
        retry: RetryConfig,
        sleep: Callable[[float], None] = time.sleep,
        links: dict[str, LinkPolicy] | None = None,
    ) -> None:
        self.providers = providers
        self.last_resort = last_resort
        self.breaker = breaker
        self.retry = retry
        self.sleep = sleep
        self.links = links or {}
        self.bulkheads = {name: Bulkhead(self._link(name).max_in_flight) for name in providers}
        self.answered: set[str] = set()  # providers that have answered this process: no longer cold

    def warm(self, names: Sequence[str], passage: ContextPassage, timeout_s: float) -> dict[str, float]:
        """Ask each provider one short question, so that its first real answer does not pay for
        loading the model and its prompt (a local model's first token took past its 20 s deadline).
        Returns the ms each took; one that fails stays cold, and says so in the answers it gives."""
        took: dict[str, float] = {}
        for name in names:
            provider = self.providers.get(name)
            if provider is None:
                continue
            started = time.monotonic()
            question = "What does this say?"
            try:
                provider.generate(GenerationRequest("", question, [passage], 1, timeout_s))
            except ProviderError as exc:
                log.warning("provider %s did not warm up: %s", name, exc)
                continue
            self.answered.add(name)
            took[name] = (time.monotonic() - started) * 1000
        return took

    def _link(self, name: str) -> LinkPolicy:
        return self.links.get(name, LinkPolicy())

    def run(
        self,
        chain: Sequence[str],
        request: Callable[..., GenerationRequest],  # (timeout_s, first_token_timeout_s=None) -> request
        deadline: float,  # time.monotonic()
        on_token: OnToken | None = None,
        on_fallback: Callable[[str], None] | None = None,  # a streamed partial answer is void
    ) -> ChainResult:
        attempts: list[ProviderAttempt] = []
        for name in chain:
            provider = self.providers.get(name)
            if provider is None:
                attempts.append(ProviderAttempt(provider=name, model="", outcome="skipped", reason="not configured"))
                continue
            result = self._try(provider, request, deadline, attempts, on_token, on_fallback)
            if result is not None:
                return ChainResult(result, provider, attempts)
        started = time.monotonic()
        gen = self.last_resort.generate(request(max(0.0, deadline - started)), on_token)
        attempts.append(
            ProviderAttempt(
                provider=self.last_resort.name,
                model=self.last_resort.model,
                outcome="ok",
                ms=(time.monotonic() - started) * 1000,
            )
        )
        return ChainResult(gen, self.last_resort, attempts)

    def _try(
        self,
        provider: Provider,
        request: Callable[..., GenerationRequest],
        deadline: float,
        attempts: list[ProviderAttempt],
        on_token: OnToken | None,
        on_fallback: Callable[[str], None] | None,
    ) -> Generation | None:
        for attempt in range(1, self.retry.max_attempts + 1):
            left = deadline - time.monotonic() - EXTRACTIVE_RESERVE_S
            if left <= 0:
                attempts.append(
                    ProviderAttempt(
                        provider=provider.name, model=provider.model, outcome="skipped", reason="budget spent"
                    )
                )
                return None
            if not self.breaker.allow(provider.name):
                attempts.append(ProviderAttempt(provider=provider.name, model=provider.model, outcome="breaker_open"))
                return None
            bulkhead = self.bulkheads[provider.name]
            if not bulkhead.enter():
                attempts.append(
                    ProviderAttempt(
                        provider=provider.name, model=provider.model, outcome="skipped", reason="bulkhead_full"
                    )
                )
                return None
            link = self._link(provider.name)
            timeout = min(left, link.attempt_timeout_s or left)
            started = time.monotonic()
            streamed = False

            def relay(token: str) -> None:
                nonlocal streamed
                streamed = True
                if on_token is not None:
                    on_token(token)

            try:
                gen = provider.generate(
                    request(timeout, link.first_token_timeout_s), relay if on_token is not None else None
                )
            except ProviderError as exc:
                ms = (time.monotonic() - started) * 1000
                outcome = "timeout" if exc.reason == "timeout" else "error"
                attempts.append(
                    ProviderAttempt(
                        provider=provider.name,
                        model=provider.model,
                        outcome=outcome,
                        reason=exc.reason,
                        ms=ms,
                        cold=provider.name not in self.answered,
                    )
                )
                self.breaker.failure(provider.name)
                if streamed and on_fallback is not None:
                    on_fallback(exc.reason)
                if exc.reason not in RETRYABLE or attempt == self.retry.max_attempts:
                    return None
                wait = self._backoff(attempt, exc.retry_after_s)
                if time.monotonic() + wait >= deadline - EXTRACTIVE_RESERVE_S:
                    return None  # no time to wait for another try: next link
                self.sleep(wait)
                continue
            finally:
                bulkhead.leave()
                metrics.GENERATION.labels(
                    gen_ai_operation_name="chat", gen_ai_system=provider.name, gen_ai_request_model=provider.model
                ).observe(time.monotonic() - started)
            ms = (time.monotonic() - started) * 1000
            cold = provider.name not in self.answered
            self.answered.add(provider.name)
            attempts.append(
                ProviderAttempt(provider=provider.name, model=provider.model, outcome="ok", ms=ms, cold=cold)
            )
            self.breaker.success(provider.name)
            return gen
        return None

    def _backoff(self, attempt: int, retry_after_s: float | None) -> float:
        if retry_after_s is not None:
            return min(retry_after_s, self.retry.max_backoff_s * 4)
        cap = min(self.retry.max_backoff_s, self.retry.base_backoff_s * 2 ** (attempt - 1))
        return random.uniform(cap / 2, cap)  # jitter: workers that failed together retry apart
