"""The stack waits for Redis to finish loading its data, not only for its port to open."""

from __future__ import annotations

import socket
import threading

import pytest

from infra.services import ServiceError, wait_redis_ready


def _fake_redis(replies: list[bytes]) -> tuple[int, threading.Thread]:
    """Answers each connection's PING with the next reply, as Redis does while loading and after."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        with listener:
            for reply in replies:
                conn, _ = listener.accept()
                with conn:
                    conn.recv(64)
                    conn.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return port, thread


def test_ready_only_when_ping_answers_pong() -> None:
    loading = b"-LOADING Valkey is loading the dataset in memory\r\n"
    port, thread = _fake_redis([loading, loading, b"+PONG\r\n"])
    wait_redis_ready(port, timeout=10)
    thread.join(timeout=5)
    assert not thread.is_alive()  # it asked until the third answer


def test_a_redis_that_stays_loading_is_an_error_that_says_so() -> None:
    port, _ = _fake_redis([b"-LOADING Valkey is loading the dataset in memory\r\n"] * 50)
    with pytest.raises(ServiceError, match="LOADING"):
        wait_redis_ready(port, timeout=1)
