"""Admission: how many queries this process runs at once, and how many may wait for a turn.

A query holds one of `limit` slots from start to answer. When all are taken, up to `queue` more
may wait for one, but only while the wait they can expect (their place in line times the recent
time a query holds a slot, over the slots) fits in `wait_s`; otherwise, or when the queue is
full, the request is refused at once with 503 `overloaded` and a Retry-After. So the queue is as
deep as the budget allows at the current speed, a refusal costs microseconds instead of a wait
that ends in one, and a request never waits so long that its step budgets run out and it
degrades into a wrong answer. A wait that runs long anyway ends at BACKSTOP x `wait_s`: a request
admitted to the line is served unless the pace collapses (a refusal after a wait is the slow kind).

Fair between tenants: while every slot is taken, a tenant that already holds or waits for its
share of the slots (the slots over the tenants running or waiting, at least one) is refused
rather than queued, so one tenant's burst cannot fill the line in front of the others. With the
process to itself, a tenant may use every slot.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
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
        self._holding: Counter[str] = Counter()  # per tenant: slots held and places in line
        # Queries let in at the door (`door`) and not yet answered: running, waiting, or still on
        # their way to a slot (their key checked, their body read). Counted from the door, so a
        # burst cannot all pass the door's check before any of it has taken a place in line.
        self.inside = 0

    def expected_wait_s(self, ahead: int | None = None) -> float:
        """What a request with `ahead` others before it in line (by default, the next one to
        join the line) can expect to wait for a slot, at the recent pace."""
        return ((self._waiting if ahead is None else ahead) + 1) * self.hold_s / self.limit

    def refusal(self) -> str | None:
        """Why a request arriving now would be refused (None: it would run or wait its turn).
        The API asks this at the door, before it reads a query's body or checks its key, to shed
        load cheaply; everyone let in and not yet answered counts, wherever they are on their way."""
        if self.inside >= self.limit + self.queue:
            return f"{self.limit} queries are running and {self.inside - self.limit} waiting or on their way"
        if self.inside >= self.limit and self.expected_wait_s(self.inside - self.limit) > self.wait_s:
            return f"a slot is {self.expected_wait_s(self.inside - self.limit):.1f} s away at the current pace"
        return self._line_full()

    def _line_full(self) -> str | None:
        """Why the line for a slot takes no one more now (None: it does, or a slot is free)."""
        if not self._slots.locked():
            return None
        if self._waiting >= self.queue:
            return f"{self.limit} queries are running and {self._waiting} waiting"
        if self.expected_wait_s() > self.wait_s:
            return f"a slot is {self.expected_wait_s():.1f} s away at the current pace"
        return None

    @asynccontextmanager
    async def door(self) -> AsyncIterator[str | None]:
        """A query arriving: why it is refused (None: let in, counted inside until it is answered)."""
        why = self.refusal()
        if why is not None:
            yield why
            return
        self.inside += 1
        try:
            yield None
        finally:
            self.inside -= 1

    def refuse_early(self, why: str) -> Overloaded:
        """Count a refusal made before acquire (see `refusal`) and say it."""
        self.refused += 1
        metrics.ADMISSION_REFUSALS.inc()
        return Overloaded(f"the server is at its query capacity ({why}); retry shortly")

    def share(self, tenant: str) -> int:
        """How many slots and places in line `tenant` may hold while others want them too."""
        tenants = len(set(self._holding) | {tenant})
        return max(1, math.ceil(self.limit / tenants))

    async def acquire(self, tenant: str = "") -> float:
        """Take a slot (or raise Overloaded); returns when it was taken, for `release`."""
        if self._slots.locked():
            why = self._line_full() or self._over_share(tenant)
            if why is not None:
                self._refuse(why)
            self._hold(tenant)
            self._waiting += 1
            try:
                await asyncio.wait_for(self._slots.acquire(), BACKSTOP * self.wait_s)
            except TimeoutError:
                self._let_go(tenant)
                self._refuse(f"no query slot came free within {BACKSTOP * self.wait_s:.1f} s")
            except BaseException:
                self._let_go(tenant)
                raise
            finally:
                self._waiting -= 1
        else:
            await self._slots.acquire()
            self._hold(tenant)
        self.in_flight += 1
        return time.monotonic()

    def release(self, taken_at: float, tenant: str = "") -> None:
        self._let_go(tenant)
        self.in_flight -= 1
        self.hold_s = 0.8 * self.hold_s + 0.2 * (time.monotonic() - taken_at)
        self._slots.release()

    @asynccontextmanager
    async def slot(self, tenant: str = "") -> AsyncIterator[None]:
        taken_at = await self.acquire(tenant)
        try:
            yield
        finally:
            self.release(taken_at, tenant)

    def _over_share(self, tenant: str) -> str | None:
        """Why `tenant` may not take a place in line while others want the slots too, if it may not."""
        if not tenant or len(set(self._holding) | {tenant}) < 2 or self._holding[tenant] < self.share(tenant):
            return None
        return f"tenant {tenant!r} holds its share of {self.share(tenant)} of {self.limit} slots"

    def _hold(self, tenant: str) -> None:
        if tenant:
            self._holding[tenant] += 1

    def _let_go(self, tenant: str) -> None:
        if tenant:
            self._holding[tenant] -= 1
            if self._holding[tenant] <= 0:
                del self._holding[tenant]

    def _refuse(self, why: str) -> None:
        raise self.refuse_early(why)
