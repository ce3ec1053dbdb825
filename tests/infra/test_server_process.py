"""`python -m infra.server`, the process `make run` starts: the workers and the API together.

A query over real HTTP starts its workflow eagerly on the process's own worker and leaves one
trace in the process's span file; SIGTERM stops the API and then drains the workers (uvicorn's
own signal handling would re-raise the signal and kill the process before that).
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from pathlib import Path

import httpx
import pytest

from gateway.keys import QUERY, KeyStore
from gateway.limits import BURST_S, Limits
from infra.services import free_port, wait_port
from keel.config import Settings
from stores import redis as redis_store
from stores.keys import TENANTS_KEY
from temporal.client import connect
from tests.conftest import SAMPLES, Services, make_settings
from tests.helpers import ingest, start_api_process, start_keel_process

pytestmark = [pytest.mark.slow, pytest.mark.stack]


def _spans(settings: Settings, trace_id: str) -> list[dict[str, object]]:
    path = settings.data_dir / "traces" / "keel-server.jsonl"
    deadline = time.monotonic() + 15  # spans are exported in batches, every few seconds
    while time.monotonic() < deadline:
        if path.exists():
            found = [s for line in path.read_text().splitlines() if (s := json.loads(line))["trace_id"] == trace_id]
            if any(s["name"] == "POST /v1/query" for s in found):
                return found
        time.sleep(0.5)
    return []


async def test_one_process_answers_over_http_and_stops_cleanly(services: Services, tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:6]
    settings = make_settings(
        services,
        tmp_path / "data",
        ingest_task_queue=f"server-ingest-{suffix}",
        query_task_queue=f"server-query-{suffix}",
        api_port=free_port(),
    )
    tenant = f"server-{suffix}"
    log = tmp_path / "server.log"
    server = start_keel_process("infra.server", settings, log)
    wait_port("127.0.0.1", settings.api_port, 60, server)
    try:
        r = redis_store.connect(settings)
        counters, _ = await ingest(await connect(settings), settings, r, [SAMPLES], tenant)
        assert counters.ingested == 6
        _, key = KeyStore(r).create(tenant=tenant, roles=[QUERY])

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.api_port}", timeout=60) as http:
            resp = await http.post(
                "/v1/query",
                json={"question": "How do I retry failed files?"},
                headers={"Authorization": f"Bearer {key}"},
            )
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["citations"] and not body["degradations"]

        spans = _spans(settings, body["trace_id"])
        names = {s["name"] for s in spans}
        assert "RunWorkflow:Query" in names and "RunActivity:query.find" in names, names
        assert "query.retrieve" in names, names  # each step's span, inside the activity that ran it
        request = next(s for s in spans if s["name"] == "POST /v1/query")
        assert request["attributes"]["keel.eager_start"] is True  # type: ignore[index]
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=60)
    assert code == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert "Application shutdown complete" in text and "Beginning worker shutdown" in text


async def test_two_api_processes_share_one_limit(services: Services, tmp_path: Path) -> None:
    """64 clients spread over two API processes on one Redis: the key's rate limit holds for the
    pair (GCRA: a burst of BURST_S seconds' worth, then the rate), and every refusal says when to
    come back."""
    suffix = uuid.uuid4().hex[:6]
    settings = make_settings(
        services,
        tmp_path / "data",
        ingest_task_queue=f"limit-ingest-{suffix}",
        query_task_queue=f"limit-query-{suffix}",
        api_port=free_port(),
    )
    r = redis_store.connect(settings)
    rpm = 60
    tenant = f"limit-{suffix}"
    r.sadd(TENANTS_KEY, tenant)  # known, with no documents: each admitted query answers "no sources" at once
    _, key = KeyStore(r).create(tenant=tenant, roles=[QUERY], limits=Limits(rpm=rpm))
    server = start_keel_process("infra.server", settings, tmp_path / "server.log")
    second = settings.model_copy(update={"api_port": free_port()})
    api_only = start_api_process(second, tmp_path / "api.log")
    ports = [settings.api_port, second.api_port]
    wait_port("127.0.0.1", ports[0], 60, server)
    admitted: list[int] = []
    refusals: list[httpx.Response] = []
    try:
        async with httpx.AsyncClient(timeout=60) as http:

            async def client(n: int, until: float) -> None:
                i = n
                while time.monotonic() < until:
                    port = ports[i % 2]
                    i += 1
                    resp = await http.post(
                        f"http://127.0.0.1:{port}/v1/query",
                        json={"question": "What does the limiter allow?"},
                        headers={"Authorization": f"Bearer {key}"},
                    )
                    if resp.status_code == 200:
                        admitted.append(port)
                    else:
                        refusals.append(resp)
                        await asyncio.sleep(0.05)

            started = time.monotonic()
            await asyncio.gather(*(client(n, started + 4.0) for n in range(64)))
            elapsed = time.monotonic() - started
    finally:
        for proc in (api_only, server):
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    allowed = BURST_S * rpm / 60 + elapsed * rpm / 60 + 1  # the burst, the rate over the run, one in rounding
    assert 0.5 * BURST_S * rpm / 60 <= len(admitted) <= allowed, (len(admitted), elapsed)
    assert set(admitted) == set(ports)  # both processes admitted some: one shared count, not one each
    codes = {(resp.status_code, resp.json()["error"]["code"]) for resp in refusals}
    assert (429, "rate_limited") in codes and codes <= {(429, "rate_limited"), (503, "overloaded")}, codes
    for resp in refusals:  # over the limit, or (64 clients) over a process's query capacity
        assert float(resp.headers["Retry-After"]) > 0
        assert resp.status_code == 503 or "RateLimit-Policy" in resp.headers
