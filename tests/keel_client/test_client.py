"""The Python client against a real API-only process (`infra.api`) whose queries and ingests run
on the test stack's worker: upload and follow a job, ask, stream, chat, delete, and errors."""

from __future__ import annotations

import asyncio

import pytest
import redis

from gateway.keys import INGEST, QUERY, KeyStore
from keel_client import Keel, KeelAPIError
from tests.conftest import SAMPLES

pytestmark = [pytest.mark.stack, pytest.mark.usefixtures("worker")]


async def test_a_client_with_a_url_and_a_key_ingests_asks_and_deletes(
    api_url: str, redis_client: redis.Redis, tenant: str
) -> None:
    _, token = KeyStore(redis_client).create(tenant=tenant, roles=[INGEST, QUERY], name="client")

    def session() -> None:  # the client is synchronous: run where it may block
        with Keel(api_url, token) as keel:
            job = keel.ingest(SAMPLES / "faq.txt")
            done = keel.wait(job["job_id"], every_s=0.2)
            assert done["status"] == "completed" and done["counters"]["ingested"] == 1

            answer = keel.query("How do I retry failed files?")
            assert answer["citations"][0]["source"].endswith("faq.txt") and "[1]" in answer["answer"]
            events = list(keel.stream("How do I retry failed files?"))
            assert events[0][0] == "sources" and events[-1][0] == "done"
            assert events[-1][1]["answer"] == answer["answer"]
            chat = keel.chat([{"role": "user", "content": "How do I retry failed files?"}])
            assert chat["choices"][0]["message"]["content"] == answer["answer"]

            doc_id = answer["citations"][0]["doc_id"]
            assert keel.delete(doc_id)["status"] == "deleted"
            assert keel.delete(doc_id)["status"] == "absent"

            with pytest.raises(KeelAPIError) as unknown:
                keel.job("no-such-job")
            assert unknown.value.status == 404 and unknown.value.request_id
        with Keel(api_url, "keel_nope_nope") as stranger, pytest.raises(KeelAPIError) as refused:
            stranger.query("anything")
        assert refused.value.status == 401 and refused.value.code

    await asyncio.to_thread(session)


async def test_the_synchronous_openai_sdk_against_a_running_api(
    api_url: str, redis_client: redis.Redis, tenant: str
) -> None:
    """The official SDK's synchronous client, over a real socket (the other SDK tests run async, in-process)."""
    import openai

    _, token = KeyStore(redis_client).create(tenant=tenant, roles=[INGEST, QUERY], name="sdk")

    def session() -> None:
        with Keel(api_url, token) as keel:
            keel.wait(keel.ingest(SAMPLES / "faq.txt")["job_id"], every_s=0.2)
        sdk = openai.OpenAI(base_url=f"{api_url}/v1", api_key=token, max_retries=0)
        assert "keel" in {m.id for m in sdk.models.list().data}
        done = sdk.chat.completions.create(
            model="keel", messages=[{"role": "user", "content": "How do I retry failed files?"}]
        )
        assert "[1]" in (done.choices[0].message.content or "")
        streamed = sdk.chat.completions.create(
            model="keel", messages=[{"role": "user", "content": "How do I retry failed files?"}], stream=True
        )
        text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
        assert "[1]" in text
        with pytest.raises(openai.NotFoundError):
            sdk.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])

    await asyncio.to_thread(session)
