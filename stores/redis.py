"""The Redis client every process uses: replies decoded to text, timeouts set, built in one place.

`KEEL_REDIS_URL` picks the deployment:
- `redis://host:port/db` (or `rediss://`, `unix://`): one server;
- `redis+cluster://host:port,host:port` (or `rediss+cluster://`): a Redis Cluster, found from any
  of the nodes named. Every key of a tenant carries the tenant as its hash tag (`stores.keys`), so
  each script and transaction Keel runs stays within one slot;
- `redis+sentinel://host:port,host:port/service[/db]`: the primary that Sentinel names for
  `service`, followed through a failover.

A cluster client's `pipeline()` is a transaction here, as a single server's is (redis-py's is not
by default): code written for one server keeps its atomicity, and a transaction that would span
slots fails loudly (CROSSSLOT) instead of running in pieces.
"""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import unquote, urlsplit

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.sentinel import Sentinel

from keel.config import Settings


class KeelCluster(RedisCluster):
    """A cluster client whose pipelines are transactions unless asked otherwise, as `redis.Redis`'s are."""

    def pipeline(self, transaction: Any = True, shard_hint: Any = None) -> Any:
        return super().pipeline(transaction=transaction, shard_hint=shard_hint)


def connect(settings: Settings, *, socket_timeout: float = 10, connect_timeout: float = 3) -> redis.Redis:
    """A client that decodes replies (str, never bytes). It connects lazily, on its first command."""
    return connect_url(settings.redis_url, socket_timeout=socket_timeout, connect_timeout=connect_timeout)


def connect_url(url: str, *, socket_timeout: float = 10, connect_timeout: float = 3) -> redis.Redis:
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": connect_timeout,
    }
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("redis+cluster", "rediss+cluster"):
        nodes = [ClusterNode(host, port) for host, port in _hosts(parts.netloc)]
        auth = _auth(parts.netloc)
        client = KeelCluster(startup_nodes=nodes, ssl=scheme.startswith("rediss"), **auth, **options)
        # Typed as one server's client: the commands Keel uses are the same on both.
        return cast(redis.Redis, client)
    if scheme == "redis+sentinel":
        path = [p for p in parts.path.split("/") if p]
        if not path:
            raise ValueError("a redis+sentinel:// URL names the service: redis+sentinel://host:port/<service>[/db]")
        sentinel = Sentinel(_hosts(parts.netloc), socket_timeout=socket_timeout, sentinel_kwargs=_auth(parts.netloc))
        db = int(path[1]) if len(path) > 1 else 0
        return cast(redis.Redis, sentinel.master_for(path[0], db=db, **_auth(parts.netloc), **options))
    return redis.Redis.from_url(url, **options)


def is_cluster(r: redis.Redis) -> bool:
    return isinstance(r, RedisCluster)


def _hosts(netloc: str) -> list[tuple[str, int]]:
    hosts = netloc.rsplit("@", 1)[-1]
    out = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":")
        out.append((host or "127.0.0.1", int(port or 6379)))
    return out


def _auth(netloc: str) -> dict[str, Any]:
    if "@" not in netloc:
        return {}
    userinfo = netloc.rsplit("@", 1)[0]
    user, _, password = userinfo.partition(":")
    auth: dict[str, Any] = {"password": unquote(password)} if password else {}
    if user:
        auth["username"] = unquote(user)
    return auth
