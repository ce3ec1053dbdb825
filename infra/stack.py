"""`make run` / `make down`: start and stop the whole embedded stack on loopback.

    python -m infra.stack up      # Temporal (+UI), Redis, the server (workers + API); ingests a sample
    python -m infra.stack down    # stops everything `up` started
    python -m infra.stack status

Each process runs in its own session with a pid file and a log under <data dir>/run and
<data dir>/logs, so `down` stops exactly what `up` started and nothing else.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from gateway.keys import ADMIN, INGEST, QUERY, KeyStore
from infra.services import (
    REDIS_LOAD_TIMEOUT_S,
    ServiceError,
    port_open,
    set_retention,
    start_redis,
    start_temporal,
    wait_port,
    wait_redis_ready,
)
from keel.config import Settings, get_settings
from stores import redis as redis_store

SAMPLE_CORPUS = Path(__file__).resolve().parent.parent / "samples" / "corpus"
SAMPLE_TENANT = "demo"


def _pid_file(settings: Settings, name: str) -> Path:
    return settings.data_dir / "run" / f"{name}.pid"


def process_alive(pid: int) -> bool:
    try:  # a child of this process that exited is a zombie until reaped: signal 0 still reaches it
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:  # not our child (started by an earlier `make run`)
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running(settings: Settings, name: str) -> int | None:
    path = _pid_file(settings, name)
    if path.exists():
        pid = int(path.read_text().strip() or 0)
        if pid and process_alive(pid):
            return pid
        path.unlink()
    return None


def _record(settings: Settings, name: str, pid: int) -> None:
    path = _pid_file(settings, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(str(pid))


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host or "127.0.0.1", int(port)


def spawn_python(settings: Settings, name: str, args: list[str]) -> int:
    log = settings.data_dir / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    _record(settings, name, proc.pid)
    return proc.pid


def wait_for_line(log: Path, needle: str, pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and needle in log.read_text(errors="replace"):
            return
        if not process_alive(pid):
            raise ServiceError(f"process {pid} exited during start-up; see {log}")
        time.sleep(0.25)
    raise ServiceError(f"no '{needle}' in {log} after {timeout:.0f}s")


def up(settings: Settings) -> None:
    data = settings.data_dir
    data.mkdir(parents=True, exist_ok=True)
    t_host, t_port = _host_port(settings.temporal_address)
    if running(settings, "temporal") is None and not port_open(t_host, t_port):
        svc = start_temporal(
            data,
            port=t_port,
            ui_port=int(settings.temporal_ui_url.rsplit(":", 1)[1]),
            detach=True,
            codec_endpoint=f"http://{settings.api_host}:{settings.api_port}/codec",
        )
        _record(settings, "temporal", svc.proc.pid)
        set_retention(settings.temporal_address, settings.temporal_namespace)
    print(f"temporal  {settings.temporal_address}  (UI {settings.temporal_ui_url})")

    r_port = int(settings.redis_url.rsplit(":", 1)[1].split("/")[0])
    if running(settings, "redis") is None and not port_open("127.0.0.1", r_port):
        svc = start_redis(data, port=r_port, detach=True)  # returns once Redis has loaded its data
        _record(settings, "redis", svc.proc.pid)
    else:
        wait_redis_ready(r_port, REDIS_LOAD_TIMEOUT_S)  # one started earlier may still be loading its data
    print(f"redis     {settings.redis_url}")

    if (pid := running(settings, "server")) is None:
        pid = start_server(settings)
    print(f"server    pid {pid}: workers and API  (log {data / 'logs' / 'server.log'})")
    print(
        f"api       http://{settings.api_host}:{settings.api_port}  (docs http://{settings.api_host}:{settings.api_port}/docs)"
    )

    keys = ensure_sample_keys(settings)
    print(
        f"api keys  {settings.keys_file}  (tenant '{SAMPLE_TENANT}': KEEL_ADMIN_KEY admin, KEEL_API_KEY ingest+query)"
    )
    print(f"\ningesting the sample corpus into tenant '{SAMPLE_TENANT}'...", flush=True)
    corpus = os.path.relpath(SAMPLE_CORPUS) if SAMPLE_CORPUS.is_relative_to(Path.cwd()) else str(SAMPLE_CORPUS)
    url = f"http://{settings.api_host}:{settings.api_port}"
    env = {**os.environ, "KEEL_API_KEY": keys["KEEL_API_KEY"], "KEEL_URL": url}
    subprocess.run([sys.executable, "-m", "cli.main", "ingest", corpus], check=False, env=env)  # over HTTP
    print(
        "\nKeel is up.\n"
        f"  API docs     http://{settings.api_host}:{settings.api_port}/docs\n"
        f"  Temporal UI  {settings.temporal_ui_url}\n"
        f"  API keys     {settings.keys_file} (`set -a; . {settings.keys_file}` for the CLI and curl)\n"
        f"  logs         {data / 'logs'}\n"
        "  a local LLM  make llm MODEL=/path/to/model.gguf  (llama.cpp on loopback; Keel ships no weights)\n"
        "  stop with    make down"
    )


def start_server(settings: Settings) -> int:
    pid = spawn_python(settings, "server", ["-m", "infra.server"])
    print("server    starting (loads the models)...", flush=True)
    wait_for_line(settings.data_dir / "logs" / "server.log", "worker ready", pid, timeout=300)
    wait_port(settings.api_host, settings.api_port, timeout=60)
    return pid


def restart_server(settings: Settings) -> int:
    """Stop the server process and start it again (it reads its providers at start)."""
    stop(settings, "server")
    return start_server(settings)


def ensure_sample_keys(settings: Settings) -> dict[str, str]:
    """An admin key and an ingest+query key for the sample tenant, made on the first start and
    kept in a file only its owner can read (the keys themselves are stored nowhere else)."""
    path = settings.keys_file
    if path.is_file():
        found = dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
        if {"KEEL_ADMIN_KEY", "KEEL_API_KEY"} <= found.keys():
            return found
    store = KeyStore(redis_store.connect(settings))
    _, admin = store.create(tenant=SAMPLE_TENANT, roles=[ADMIN], name="make run: admin")
    _, app = store.create(tenant=SAMPLE_TENANT, roles=[INGEST, QUERY], name="make run: ingest+query")
    keys = {"KEEL_ADMIN_KEY": admin, "KEEL_API_KEY": app}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("".join(f"{k}={v}\n" for k, v in keys.items()))
    os.chmod(path, 0o600)
    return keys


def down(settings: Settings) -> None:
    from infra import llm

    llm.down(settings)  # a local model is unwired first: the next start does without it
    for name in ("llm", "server", "redis", "temporal"):  # reverse start order
        stop(settings, name)


def stop(settings: Settings, name: str) -> None:
    pid = running(settings, name)
    if pid is None:
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 20
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if process_alive(pid):
        os.killpg(pid, signal.SIGKILL)
    _pid_file(settings, name).unlink(missing_ok=True)
    print(f"stopped {name} (pid {pid})")


def status(settings: Settings) -> None:
    for name in ("temporal", "redis", "server", "llm"):
        pid = running(settings, name)
        print(f"{name:9} {'running, pid ' + str(pid) if pid else 'stopped'}")


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else "status"
    actions = {"up": up, "down": down, "status": status}
    if command not in actions:
        sys.exit(f"usage: python -m infra.stack {{{'|'.join(actions)}}}")
    try:
        actions[command](get_settings())
    except ServiceError as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
