"""The app under test, wired to the session's Temporal client and Redis (no lifespan, no network)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import httpx
import pytest
import pytest_asyncio
import redis
from temporalio.client import Client

from api.main import create_app
from gateway.keys import INGEST, QUERY, KeyStore
from keel.config import Settings, get_settings
from pipelines.deps import Deps
from tests.conftest import SAMPLES
from tests.helpers import ingest


@pytest_asyncio.fixture
async def api(
    client: Client, settings: Settings, redis_client: redis.Redis, deps: Deps
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(indexes=deps.indexes)  # as infra.server builds it: beside the workers, with their indexes
    app.dependency_overrides[get_settings] = lambda: settings
    app.state.temporal = client
    app.state.redis = redis_client
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://keel", timeout=60) as http:
        yield http


def expect_error(resp: httpx.Response, status: int, code: str) -> dict[str, str]:
    """A JSON error with this status and code, a message, and the request id in body and header."""
    assert resp.status_code == status, resp.text
    err: dict[str, str] = resp.json()["error"]
    assert err["code"] == code and err["message"] and err["request_id"]
    assert resp.headers["X-Request-ID"] == err["request_id"]
    return err


Auth = Callable[..., dict[str, str]]


@pytest.fixture
def auth(redis_client: redis.Redis) -> Auth:
    """Headers with a fresh API key for a tenant: `auth(tenant, roles=("query",), groups=("hr",))`."""

    def headers(tenant: str, roles: Sequence[str] = (INGEST, QUERY), groups: Sequence[str] = ()) -> dict[str, str]:
        _, token = KeyStore(redis_client).create(tenant=tenant, roles=roles, groups=groups, name="test")
        return {"Authorization": f"Bearer {token}"}

    return headers


@pytest_asyncio.fixture
async def sampled(client: Client, settings: Settings, redis_client: redis.Redis, tenant: str) -> str:
    """A tenant with the sample corpus ingested."""
    await ingest(client, settings, redis_client, [SAMPLES], tenant)
    return tenant


async def wait_job(api: httpx.AsyncClient, job_id: str, headers: dict[str, str]) -> dict[str, Any]:
    for _ in range(300):
        body: dict[str, Any] = (await api.get(f"/v1/jobs/{job_id}", headers=headers)).json()
        if body["status"] == "completed":
            return body
        await asyncio.sleep(0.1)
    raise AssertionError("job did not complete")


async def stream_events(
    api: httpx.AsyncClient, headers: dict[str, str], question: str, path: str = "/v1/query/stream"
) -> list[tuple[str, Any]]:
    """POST /v1/query/stream (or another streaming route), read to its end: the (event, data) pairs in order."""
    events: list[tuple[str, Any]] = []
    async with api.stream("POST", path, json={"question": question}, headers=headers) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        event = ""
        async for line in resp.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                events.append((event, json.loads(line[6:])))
    return events
