"""The cluster profile: Keel as it runs beyond one box, started for real on loopback.

- Qdrant: 3 nodes (`infra.qdrant_server`), collections with 3 shards and 2 copies of each;
- Redis: a Redis Cluster of 3 primaries with a replica each (`infra.redis_cluster`);
- Temporal: the dev server (no Temporal cluster can be had here; see docs/how-to/deploy.md);
- Keel: two API-only processes (`infra.api`), a query worker and an ingest worker
  (`infra.worker --queues query|ingest`), each a process of its own with its own metrics ports.

    python -m infra.cluster up      # `make run-cluster`; prints the API addresses
    python -m infra.cluster down    # `make down-cluster`

The same class starts it for the failure drills (tests/cluster) and `make bench-cluster`, which
kill and restart its parts. Development and tests only: each part here is one process on one box.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from infra import qdrant_server
from infra.redis_cluster import RedisClusterService, start_redis_cluster
from infra.redis_cluster import start_node as start_redis_node
from infra.services import Service, ServiceError, free_ports, start_temporal, wait_port, wait_redis_ready
from keel.config import Settings

KEEL_PROCESSES = ("api-1", "api-2", "query-worker", "ingest-worker")
COMMANDS = {
    "api-1": ["-m", "infra.api"],
    "api-2": ["-m", "infra.api"],
    "query-worker": ["-m", "infra.worker", "--queues", "query"],
    "ingest-worker": ["-m", "infra.worker", "--queues", "ingest"],
}


@dataclass
class KeelProcess:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    api_port: int | None = None


@dataclass
class ClusterProfile:
    data_dir: Path
    qdrant: qdrant_server.QdrantCluster
    redis: RedisClusterService
    temporal: Service
    env: dict[str, str]
    ports: dict[str, dict[str, int]] = field(default_factory=dict)  # process -> its ports
    processes: dict[str, KeelProcess] = field(default_factory=dict)

    def settings(self) -> Settings:
        """Settings for a client of this profile (the CLI, a test, a benchmark): its services, its
        data dir, and the processes' codec key (None: the ring they share in the data dir), so a
        tenant's data key wrapped by the client opens in the workers."""
        env = self.env
        return Settings().model_copy(
            update={
                "data_dir": Path(env["KEEL_DATA_DIR"]),
                "redis_url": env["KEEL_REDIS_URL"],
                "qdrant_url": env["QDRANT_URL"],
                "temporal_address": env["KEEL_TEMPORAL_ADDRESS"],
                "temporal_ui_url": env.get("KEEL_TEMPORAL_UI_URL", Settings().temporal_ui_url),
                "codec_key": env.get("KEEL_CODEC_KEY"),
            }
        )

    @property
    def api_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{self.ports[name]['api']}" for name in ("api-1", "api-2")]

    # -- Keel's processes ------------------------------------------------------------------
    def start(self, name: str, timeout: float = 300) -> KeelProcess:
        """Start (or restart) one of Keel's processes; returns once it serves."""
        ports = self.ports[name]
        env = {
            **self.env,
            "KEEL_API_PORT": str(ports["api"]),
            "KEEL_METRICS_PORT": str(ports["metrics"]),
            "KEEL_TEMPORAL_METRICS_PORT": str(ports["temporal_metrics"]),
        }
        log = self.data_dir / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        seen = log.stat().st_size if log.exists() else 0  # a restart's log holds the last start's lines
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, *COMMANDS[name]],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        started = KeelProcess(name=name, proc=proc, log=log, api_port=ports["api"] if name.startswith("api") else None)
        self.processes[name] = started
        if started.api_port is not None:
            wait_port("127.0.0.1", started.api_port, timeout, proc)
        else:
            _wait_line(log, "worker ready", proc, timeout, skip=seen)
        return started

    def kill(self, name: str) -> None:
        """kill -9: no shutdown, no draining (what a lost machine does)."""
        p = self.processes[name]
        if p.proc.poll() is None:
            os.killpg(p.proc.pid, signal.SIGKILL)
            p.proc.wait()

    def stop_process(self, name: str) -> None:
        p = self.processes.get(name)
        if p is None or p.proc.poll() is not None:
            return
        os.killpg(p.proc.pid, signal.SIGTERM)
        try:
            p.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(p.proc.pid, signal.SIGKILL)
            p.proc.wait()

    # -- the services ----------------------------------------------------------------------
    def kill_qdrant_node(self, index: int) -> qdrant_server.QdrantNode:
        node = self.qdrant.nodes[index]
        node.service.proc.kill()
        node.service.proc.wait()
        return node

    def restart_qdrant_node(self, node: qdrant_server.QdrantNode) -> None:
        """Started again over its storage; returns once every shard copy is Active again."""
        qdrant_server.restart(self.data_dir, node, self.qdrant)
        qdrant_server.wait_replicas_active(self.qdrant)

    def kill_redis_primary(self, index: int) -> Service:
        node = self.redis.primaries[index]
        node.proc.kill()
        node.proc.wait()
        return node

    def restart_redis_node(self, node: Service) -> None:
        """Started again over its data: it rejoins, as a replica of the one promoted in its place."""
        again = start_redis_node(self.data_dir, node.port, self.redis.bus_ports[node.port])
        wait_port("127.0.0.1", node.port, 30, again.proc)
        wait_redis_ready(node.port, 60)
        for group in (self.redis.primaries, self.redis.replicas):
            if node in group:
                group[group.index(node)] = again

    def stop(self) -> None:
        for name in reversed(KEEL_PROCESSES):
            self.stop_process(name)
        self.temporal.stop()
        self.redis.stop()
        self.qdrant.stop()


def _wait_line(log: Path, needle: str, proc: subprocess.Popen[bytes], timeout: float, skip: int = 0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and needle.encode() in log.read_bytes()[skip:]:
            return
        if proc.poll() is not None:
            raise ServiceError(f"{log.stem} exited with {proc.returncode} during start-up; see {log}")
        time.sleep(0.25)
    raise ServiceError(f"no '{needle}' in {log} after {timeout:.0f}s")


def start_profile(
    data_dir: Path,
    *,
    codec_key: str | None = None,
    extra_env: dict[str, str] | None = None,
    temporal_ui: bool = False,
) -> ClusterProfile:
    """Every service, then Keel's four processes (the workers first: they create what the APIs use).
    The processes share the data dir (uploads staged by an API are read by the ingest worker,
    and the codec key ring is made there once); across machines that is a shared volume."""
    data_dir.mkdir(parents=True, exist_ok=True)
    qdrant = qdrant_server.start_cluster(data_dir, nodes=3)
    redis = start_redis_cluster(data_dir, free_ports(6), replicas=1)
    chosen = iter(free_ports(3 * len(KEEL_PROCESSES) + 2))  # all different: one of each per process, Temporal's two
    ports = {
        name: {"api": next(chosen), "metrics": next(chosen), "temporal_metrics": next(chosen)}
        for name in KEEL_PROCESSES
    }
    temporal_port, ui = next(chosen), next(chosen)
    ui_port = ui if temporal_ui else None
    # The UI decodes payloads through an API process's codec endpoint (the first one's).
    codec = f"http://127.0.0.1:{ports['api-1']['api']}/codec"
    temporal = start_temporal(data_dir / "temporal", port=temporal_port, ui_port=ui_port, codec_endpoint=codec)
    env = {
        **os.environ,
        "KEEL_DATA_DIR": str(data_dir / "keel"),
        "KEEL_REDIS_URL": redis.url,
        "QDRANT_URL": qdrant.urls,
        "KEEL_TEMPORAL_ADDRESS": f"127.0.0.1:{temporal.port}",
        "KEEL_TORCH_THREADS": "1",
        **({"KEEL_TEMPORAL_UI_URL": f"http://127.0.0.1:{ui_port}"} if ui_port else {}),
        **({"KEEL_CODEC_KEY": codec_key} if codec_key else {}),
        **(extra_env or {}),
    }
    profile = ClusterProfile(data_dir=data_dir, qdrant=qdrant, redis=redis, temporal=temporal, env=env, ports=ports)
    try:
        for name in ("query-worker", "ingest-worker", "api-1", "api-2"):
            profile.start(name)
        for url in profile.api_urls:
            _wait_healthy(url, 60)
    except Exception:
        profile.stop()
        raise
    return profile


def _wait_healthy(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise ServiceError(f"the API at {url} is not healthy after {timeout:.0f}s")


# -- make run-cluster / make down-cluster -------------------------------------------------------
STATE = Path(".keel-cluster") / "profile.json"


def up() -> None:
    from infra.stack import SAMPLE_CORPUS, SAMPLE_TENANT, ensure_sample_keys

    if STATE.exists():
        sys.exit(f"a cluster profile is up already ({STATE}); `make down-cluster` first")
    profile = start_profile(STATE.parent.resolve(), temporal_ui=True)
    pids = [
        *(n.service.proc.pid for n in profile.qdrant.nodes),
        *(n.proc.pid for n in profile.redis.nodes),
        profile.temporal.proc.pid,
        *(p.proc.pid for p in profile.processes.values()),
    ]
    STATE.write_text(json.dumps({"pids": pids, "apis": profile.api_urls}, indent=1))
    public = _public(profile.env)
    env_file = STATE.parent / "env"  # `set -a; . .keel-cluster/env` points the CLI at the profile
    env_file.write_text("".join(f"{k}={v}\n" for k, v in sorted(public.items())))
    settings = profile.settings()
    keys = ensure_sample_keys(settings)
    print(f"\ningesting the sample corpus into tenant '{SAMPLE_TENANT}'...", flush=True)
    cli_env = {**os.environ, **public, "KEEL_API_KEY": keys["KEEL_API_KEY"], "KEEL_URL": profile.api_urls[0]}
    subprocess.run([sys.executable, "-m", "cli.main", "ingest", str(SAMPLE_CORPUS)], check=False, env=cli_env)
    print("\ncluster profile up:")
    for url in profile.api_urls:
        print(f"  api        {url}  (ready: {url}/readyz)")
    print(f"  qdrant     {', '.join(n.url for n in profile.qdrant.nodes)}")
    print(f"  redis      {profile.redis.url}")
    print(f"  temporal   {profile.env['KEEL_TEMPORAL_ADDRESS']}  (UI {profile.env['KEEL_TEMPORAL_UI_URL']})")
    print(f"  api keys   {settings.keys_file}  (tenant '{SAMPLE_TENANT}')")
    print(f"  CLI        set -a; . {env_file}; . {settings.keys_file}; set +a")
    print(f"  logs       {profile.data_dir / 'logs'}")
    print("stop with `make down-cluster`")


def _public(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith(("KEEL_", "QDRANT_")) and "KEY" not in k}


def down() -> None:
    from infra.stack import process_alive

    if not STATE.exists():
        print("no cluster profile is up")
        return
    pids = list(reversed(json.loads(STATE.read_text())["pids"]))
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60  # workers drain their tasks first
    while time.monotonic() < deadline and any(process_alive(pid) for pid in pids):
        time.sleep(0.3)
    for pid in pids:
        if process_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    STATE.unlink()
    print("cluster profile stopped")


if __name__ == "__main__":
    actions = {"up": up, "down": down}
    if len(sys.argv) != 2 or sys.argv[1] not in actions:
        sys.exit("usage: python -m infra.cluster up|down")
    actions[sys.argv[1]]()
