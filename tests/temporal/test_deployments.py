"""Temporal worker versioning on the dev server: a release's query workers take new queries only
once it is made current, and the next release takes them over when it is promoted."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from temporalio.client import Client
from temporalio.service import RPCError

from app.query import build_query, query_workflow_id, run_query
from index.catalog import Catalog
from infra.worker import build_workers, run_workers
from keel.config import Settings
from pipelines.deps import Deps
from temporal import deployments
from temporal.client import connect
from temporal.deployments import workflow_code_id

pytestmark = pytest.mark.stack


async def _promote_when_seen(client: Client, deployment: str, build_id: str) -> None:
    """The server knows a version once its workers have polled: retried until then."""
    for _ in range(100):
        try:
            await deployments.promote(client, deployment, build_id)
            return
        except RPCError:  # not seen yet
            await asyncio.sleep(0.2)
    raise AssertionError(f"{build_id} never became current")


async def _ran_on(client: Client, settings: Settings, r: redis.Redis, tenant: str) -> str:
    inp = build_query(settings, r, uuid.uuid4().hex, tenant, [], "Which version answers this?")
    await run_query(client, settings, inp)
    described = await client.get_workflow_handle(query_workflow_id(tenant, inp.request_id)).describe()
    info = described.raw_description.workflow_execution_info.versioning_info
    return str(info.deployment_version.build_id)


async def test_new_queries_go_to_the_promoted_release(
    client: Client, settings: Settings, deps: Deps, redis_client: redis.Redis, tenant: str
) -> None:
    Catalog(redis_client).add_tenant(tenant)  # known, with nothing published: a query ends quickly
    name = f"keel-test-{uuid.uuid4().hex[:8]}"
    queue = f"versioned-{uuid.uuid4().hex[:8]}"
    first = settings.model_copy(update={"worker_deployment": name, "worker_build_id": "r1", "query_task_queue": queue})
    second = first.model_copy(update={"worker_build_id": "r2"})
    # Each release's workers on a client of their own, as in processes of their own; queries start
    # through a client with no worker, as an API-only process's do (no eager start: a process that
    # hosts workers starts its queries on its own release's, which is what draining it means).
    r1_client, r2_client, api = [await connect(first) for _ in range(3)]
    with ThreadPoolExecutor(16) as executor, ThreadPoolExecutor(8) as query_executor:
        async with run_workers(build_workers(r1_client, first, deps, executor, query_executor, ["query"])):
            await _promote_when_seen(api, name, "r1")
            assert await _ran_on(api, first, redis_client, tenant) == "r1"
            async with run_workers(build_workers(r2_client, second, deps, executor, query_executor, ["query"])):
                assert await _ran_on(api, first, redis_client, tenant) == "r1"  # polled, not current yet
                await _promote_when_seen(api, name, "r2")
                assert await _ran_on(api, second, redis_client, tenant) == "r2"
                state = await deployments.describe(api, name)
                assert state.current == "r2" and state.versions == ["r1", "r2"]


def test_the_default_build_id_follows_the_workflows_code() -> None:
    assert workflow_code_id() == workflow_code_id()
    assert workflow_code_id().startswith("wf-") and len(workflow_code_id()) == 15
