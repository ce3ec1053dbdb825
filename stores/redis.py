"""The Redis client every process uses: replies decoded to text, timeouts set, built in one place."""

from __future__ import annotations

import redis

from keel.config import Settings


def connect(settings: Settings, *, socket_timeout: float = 10, connect_timeout: float = 3) -> redis.Redis:
    """A client that decodes replies (str, never bytes). It connects lazily, on its first command."""
    return redis.Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout,
    )
