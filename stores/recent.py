"""Values read from Redis and kept in this process for a few seconds: settings that every query
reads (a tenant's guardrail policy, its prompt releases) cost no round trip per request, and a
change made anywhere is in force everywhere within `ttl_s`."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

import redis

T = TypeVar("T")


class Recent(Generic[T]):
    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._values: dict[tuple[int, str], tuple[float, T]] = {}
        self._lock = threading.Lock()

    def get(self, r: redis.Redis, key: str, load: Callable[[], T], *, fresh: bool = False) -> T:
        """The value for `key` on this Redis, loaded again when older than ttl_s (or `fresh`)."""
        now = time.monotonic()
        with self._lock:
            kept = self._values.get((id(r), key))
        if not fresh and kept is not None and now - kept[0] < self.ttl_s:
            return kept[1]
        value = load()
        with self._lock:
            self._values[(id(r), key)] = (now, value)
        return value

    def forget(self, r: redis.Redis, key: str) -> None:
        """This process changed it: the next read loads it."""
        with self._lock:
            self._values.pop((id(r), key), None)
