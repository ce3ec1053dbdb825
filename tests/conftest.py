"""Shared fixtures: a real Temporal dev server and a real Redis on free loopback ports, the real
models loaded once, and an in-process worker whose embedded Qdrant the tests can read directly.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
import redis
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client

from infra import qdrant_server as qdrant
from infra.redis_cluster import RedisClusterService, start_redis_cluster
from infra.services import Service, free_port, start_redis, start_temporal
from infra.worker import build_workers, run_workers
from keel import offline  # noqa: F401 - offline environment before any model import
from keel.config import Settings
from observability.tracing import setup_tracing
from pipelines.deps import Deps, build_deps
from stores import redis as redis_store
from temporal.client import connect

# New tenants start on the fp32 model here, which loads without the int8 build: the tests'
# figures and version keys are its. The int8 default is tested where a tenant starts on it
# (tests/index/test_new_tenant.py) and in tests/encoders/test_int8.py. Worker processes the
# tests start inherit it.
os.environ.setdefault("KEEL_NEW_TENANT_ENCODER", "default")

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "corpus"
# The payload codec key of the test stack: committed histories recorded with it are sealed as
# production's are and still replay. It protects test fixtures only; never use it for real data.
TEST_CODEC_KEY = "a2VlbC10ZXN0LWhpc3Rvcmllcy1vbmx5LW5vdC1zZWM="


@dataclass
class Services:
    data_dir: Path
    temporal_port: int
    redis_url: str


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """KEEL_TEST_REDIS=cluster runs the suite on a 3-primary Redis Cluster instead of one server."""
    data = tmp_path_factory.mktemp("stack")
    temporal = start_temporal(data, port=free_port(), ui_port=None)
    red: Service | RedisClusterService
    if os.environ.get("KEEL_TEST_REDIS") == "cluster":
        red = start_redis_cluster(data, [free_port() for _ in range(3)], replicas=0)
        url = red.url
    else:
        red = start_redis(data, port=free_port())
        url = f"redis://127.0.0.1:{red.port}/0"
    yield Services(data, temporal.port, url)
    temporal.stop()
    red.stop()


@pytest.fixture(scope="session")
def qdrant_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[qdrant.QdrantNode]:
    """A real single-node Qdrant server (the pinned binary `make install` fetched)."""
    node = qdrant.start_node(tmp_path_factory.mktemp("qdrant-server"))
    yield node
    node.service.stop()


@pytest.fixture(scope="session")
def qdrant_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[qdrant.QdrantCluster]:
    """A real 3-node Qdrant cluster on loopback."""
    cluster = qdrant.start_cluster(tmp_path_factory.mktemp("qdrant-cluster"), nodes=3)
    yield cluster
    cluster.stop()


def make_settings(services: Services, data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": data_dir,
        "temporal_address": f"127.0.0.1:{services.temporal_port}",
        "redis_url": services.redis_url,
        "ingest_task_queue": "test-ingest",
        "batch_window": 4,
        "retire_grace_seconds": 0.0,
        "torch_threads": 1,
        "codec_key": TEST_CODEC_KEY,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def settings(services: Services) -> Settings:
    return make_settings(services, services.data_dir / "keel")


@pytest.fixture(scope="session")
def redis_client(settings: Settings) -> redis.Redis:
    return redis_store.connect(settings)


@pytest.fixture(scope="session")
def deps(settings: Settings) -> Iterator[Deps]:
    d = build_deps(settings)
    yield d
    d.close()


@pytest.fixture(scope="session")
def spans(settings: Settings) -> InMemorySpanExporter:
    """Every span of the test session (API, workflows, activities share the process)."""
    exporter = InMemorySpanExporter()
    setup_tracing("keel-test", settings.data_dir, exporter)
    return exporter


@pytest_asyncio.fixture(scope="session")
async def client(settings: Settings, spans: InMemorySpanExporter) -> Client:
    return await connect(settings)


@pytest_asyncio.fixture(scope="session")
async def worker(client: Client, settings: Settings, deps: Deps) -> AsyncIterator[None]:
    with (
        ThreadPoolExecutor(max_workers=settings.max_concurrent_activities + 4) as executor,
        ThreadPoolExecutor(max_workers=settings.max_concurrent_query_activities) as query_executor,
    ):
        async with run_workers(build_workers(client, settings, deps, executor, query_executor)):
            yield


@pytest.fixture
def tenant() -> str:
    """A fresh tenant per test: tests share the stack but never each other's data."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def api_url(settings: Settings, tmp_path: Path) -> Iterator[str]:
    """An API-only process (`infra.api`) on a port of its own; its queries and jobs run on the
    session's worker. What a client with only a URL and a key talks to."""
    from tests.helpers import start_api_process  # helpers import this module

    apart = settings.model_copy(update={"api_port": free_port()})
    proc = start_api_process(apart, tmp_path / "api.log")
    try:
        yield f"http://127.0.0.1:{apart.api_port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
