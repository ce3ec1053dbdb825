"""Admission: how many queries this process runs at once, and how many may wait for a turn.

A query holds one of `limit` slots from start to answer. When all are taken, up to `queue` more
may wait for one, but only while the wait they can expect (their place in line times the recent
time a query holds a slot, over the slots) fits in `wait_s`; otherwise, or when the queue is
full, the request is refused at once with 503 `overloaded` and a Retry-After. So the queue is as
deep as the budget allows at the current speed, a refusal costs microseconds instead of a wait
that ends in one, and a request never waits so long that its step budgets run out and it
degrades into a wrong answer. A wait that runs long anyway ends at BACKSTOP x `wait_s`: a request
admitted to the line is served unless the pace collapses (a refusal after a wait is the slow kind).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from keel.errors import Overloaded
from observability import metrics

BACKSTOP = 2.0


class Admission:
    def __init__(self, limit: int, queue: int, wait_s: float) -> None:
        self.limit = max(1, limit)
        self.queue = max(0, queue)
        self.wait_s = wait_s
        self._slots = asyncio.Semaphore(self.limit)
        self._waiting = 0
        self.in_flight = 0
        self.refused = 0
        self.hold_s = 0.1  # how long a query holds its slot, a moving average of the recent ones

    def expected_wait_s(self) -> float:
        """What the next request in line can expect to wait for a slot, at the recent pace."""
        return (self._waiting + 1) * self.hold_s / self.limit

    def refusal(self) -> str | None:
        """Why a request arriving now would be refused (None: it would run or wait its turn).
        The API asks this before it reads a query's body or checks its key, to shed load cheaply."""
        if not self._slots.locked():
            return None
        if self._waiting >= self.queue:
            return f"{self.limit} queries are running and {self._waiting} waiting"
        if self.expected_wait_s() > self.wait_s:
            return f"a slot is {self.expected_wait_s():.1f} s away at the current pace"
        return None

    def refuse_early(self, why: str) -> Overloaded:
        """Count a refusal made before acquire (see `refusal`) and say it."""
        self.refused += 1
        metrics.ADMISSION_REFUSALS.inc()
        return Overloaded(f"the server is at its query capacity ({why}); retry shortly")

    async def acquire(self) -> float:
        """Take a slot (or raise Overloaded); returns when it was taken, for `release`."""
        if self._slots.locked():
            why = self.refusal()
            if why is not None:
                self._refuse(why)
            self._waiting += 1
            try:
                await asyncio.wait_for(self._slots.acquire(), BACKSTOP * self.wait_s)
            except TimeoutError:
                self._refuse(f"no query slot came free within {BACKSTOP * self.wait_s:.1f} s")
            finally:
                self._waiting -= 1
        else:
            await self._slots.acquire()
        self.in_flight += 1
        return time.monotonic()

    def release(self, taken_at: float) -> None:
        self.in_flight -= 1
        self.hold_s = 0.8 * self.hold_s + 0.2 * (time.monotonic() - taken_at)
        self._slots.release()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        taken_at = await self.acquire()
        try:
            yield
        finally:
            self.release(taken_at)

    def _refuse(self, why: str) -> None:
        raise self.refuse_early(why)
