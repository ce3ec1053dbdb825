"""`redis+sentinel://` follows the primary Sentinel names, through a failover: a real primary, its
replica and a Sentinel (the Valkey server binary in sentinel mode) on loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from infra.services import Service, _spawn, free_port, redis_binary, wait_port, wait_redis_ready
from stores.redis import connect_url

SERVICE = "keel-primary"


def _server(tmp: Path, port: int, *extra: str) -> Service:
    folder = tmp / str(port)
    folder.mkdir(parents=True)
    args = [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder), "--save", "", *extra]
    proc = _spawn(args, tmp / f"{port}.log", False)
    wait_port("127.0.0.1", port, 10, proc)
    wait_redis_ready(port, 10)
    return Service(f"redis-{port}", proc, port)


@pytest.fixture
def sentinel_setup(tmp_path: Path) -> Iterator[tuple[Service, Service, Service]]:
    primary = _server(tmp_path, free_port())
    replica = _server(tmp_path, free_port(), "--replicaof", "127.0.0.1", str(primary.port))
    sentinel_port = free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"port {sentinel_port}\nbind 127.0.0.1\n"
        f"sentinel monitor {SERVICE} 127.0.0.1 {primary.port} 1\n"
        f"sentinel down-after-milliseconds {SERVICE} 1000\n"
        f"sentinel failover-timeout {SERVICE} 5000\n"
    )
    proc = _spawn([redis_binary(), str(conf), "--sentinel"], tmp_path / "sentinel.log", False)
    wait_port("127.0.0.1", sentinel_port, 10, proc)
    sentinel = Service("sentinel", proc, sentinel_port)
    try:
        yield primary, replica, sentinel
    finally:
        for s in (sentinel, replica, primary):
            s.stop()


def test_the_client_follows_the_primary_through_a_failover(sentinel_setup: tuple[Service, Service, Service]) -> None:
    primary, replica, sentinel = sentinel_setup
    r = connect_url(f"redis+sentinel://127.0.0.1:{sentinel.port}/{SERVICE}", socket_timeout=2)
    r.set("keel:gen:{acme}", "7")
    deadline = time.monotonic() + 10
    while redis.Redis(port=replica.port, decode_responses=True).get("keel:gen:{acme}") != "7":
        assert time.monotonic() < deadline, "the replica never caught up"
        time.sleep(0.1)

    primary.proc.kill()
    primary.proc.wait()
    deadline = time.monotonic() + 30
    while True:  # until Sentinel has promoted the replica; meanwhile writes fail, never land elsewhere
        try:
            assert r.incr("keel:gen:{acme}") == 8
            break
        except (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError):
            assert time.monotonic() < deadline, "no failover within 30 s"
            time.sleep(0.5)
    assert redis.Redis(port=replica.port, decode_responses=True).get("keel:gen:{acme}") == "8"  # the new primary
