"""Admission: how many queries this process runs at once, and how many may wait for a turn.

A query holds one of `limit` slots from start to answer. When all are taken, up to `queue` more
wait at most `wait_s` for one; past that, or when the queue is full, the request is refused at
once with 503 `overloaded` and a Retry-After. A refusal costs microseconds, and a request never
waits so long that its step budgets run out and it degrades into a wrong answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from keel.errors import Overloaded
from observability import metrics


class Admission:
    def __init__(self, limit: int, queue: int, wait_s: float) -> None:
        self.limit = max(1, limit)
        self.queue = max(0, queue)
        self.wait_s = wait_s
        self._slots = asyncio.Semaphore(self.limit)
        self._waiting = 0
        self.in_flight = 0
        self.refused = 0

    async def acquire(self) -> None:
        if self._slots.locked():
            if self._waiting >= self.queue:
                self._refuse(f"{self.limit} queries are running and {self._waiting} waiting")
            self._waiting += 1
            try:
                await asyncio.wait_for(self._slots.acquire(), self.wait_s)
            except TimeoutError:
                self._refuse(f"no query slot came free within {self.wait_s:.1f} s")
            finally:
                self._waiting -= 1
        else:
            await self._slots.acquire()
        self.in_flight += 1

    def release(self) -> None:
        self.in_flight -= 1
        self._slots.release()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        await self.acquire()
        try:
            yield
        finally:
            self.release()

    def _refuse(self, why: str) -> None:
        self.refused += 1
        metrics.ADMISSION_REFUSALS.inc()
        raise Overloaded(f"the server is at its query capacity ({why}); retry shortly")
