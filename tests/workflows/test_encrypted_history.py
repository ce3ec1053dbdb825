"""With the codec on, Temporal's database holds no readable question or passage, and the
encrypted history still replays (with the deployment's converter)."""

from __future__ import annotations

import pytest
import redis
from temporalio.client import Client
from temporalio.worker import Replayer

from app.query import build_query, query_workflow_id, run_query
from keel.config import Settings
from temporal.data_converter import data_converter
from tests.conftest import SAMPLES, Services
from tests.helpers import ingest
from workflows.query import QueryWorkflow

pytestmark = [pytest.mark.stack, pytest.mark.usefixtures("worker")]


async def test_history_holds_only_ciphertext(
    client: Client, settings: Settings, services: Services, redis_client: redis.Redis, tenant: str
) -> None:
    await ingest(client, settings, redis_client, [SAMPLES / "faq.txt"], tenant)
    marker = "zanzibar-7731-quokka"
    question = f"How do I retry failed files? ({marker})"
    inp = build_query(settings, redis_client, f"enc-{tenant}", tenant, [], question)
    out = await run_query(client, settings, inp)
    assert out.citations
    handle = client.get_workflow_handle(query_workflow_id(tenant, inp.request_id))
    history = await handle.fetch_history()
    raw = history.to_json()
    assert marker not in raw and "Run keel ingest again" not in raw  # neither question nor passage
    db = b"".join(p.read_bytes() for p in services.data_dir.glob("temporal.sqlite*"))
    assert marker.encode() not in db
    await Replayer(workflows=[QueryWorkflow], data_converter=data_converter(settings)).replay_workflow(history)
