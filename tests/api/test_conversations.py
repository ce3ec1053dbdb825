"""Durable conversations over the real stack: a follow-up is made standalone from the turns before
it, the conversation is its owner's alone, and it ends when deleted, idle or erased with its tenant."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import redis
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from app.conversations import conversation_workflow_id
from contracts.conversation import ConversationStart
from gateway.keys import ADMIN, KeyStore
from keel.config import Settings, get_settings
from stores import conversations as index
from tests.api.conftest import Auth, expect_error, stream_events

pytestmark = [pytest.mark.stack, pytest.mark.usefixtures("worker")]
FIRST = "How do I retry failed files?"
FOLLOW_UP = "Does that ingest the unchanged ones again?"


async def _start(api: httpx.AsyncClient, headers: dict[str, str], title: str = "") -> str:
    resp = await api.post("/v1/conversations", json={"title": title}, headers=headers)
    assert resp.status_code == 201, resp.text
    assert resp.json()["turns"] == []
    cid: str = resp.json()["id"]
    return cid


async def _ask(api: httpx.AsyncClient, headers: dict[str, str], cid: str, question: str) -> dict[str, object]:
    resp = await api.post(f"/v1/conversations/{cid}/turns", json={"question": question}, headers=headers)
    assert resp.status_code == 200, resp.text
    body: dict[str, object] = resp.json()
    return body


async def test_a_conversation_keeps_its_turns_and_rewrites_its_follow_ups(
    api: httpx.AsyncClient, sampled: str, auth: Auth
) -> None:
    key = auth(sampled)
    cid = await _start(api, key)
    first = await _ask(api, key, cid, FIRST)
    assert first["rewrite"] is None and "keel ingest" in str(first["answer"]).lower()  # nothing to lean on

    second = await _ask(api, key, cid, FOLLOW_UP)
    rewrite = second["rewrite"]
    assert isinstance(rewrite, dict)
    assert rewrite["asked"] == FOLLOW_UP and rewrite["method"] == "context" and rewrite["conversation_id"] == cid
    assert rewrite["question"].startswith(FOLLOW_UP)

    kept = (await api.get(f"/v1/conversations/{cid}", headers=key)).json()
    assert [t["asked"] for t in kept["turns"]] == [FIRST, FOLLOW_UP]
    assert kept["turns"][0]["answered"] and kept["turns"][0]["doc_ids"]  # a cited answer carries context
    assert kept["title"] == "" and kept["updated_at"] >= kept["created_at"]
    assert (await api.get("/v1/conversations", headers=key)).json()["data"] == [cid]

    # Streamed, the turn ends with the whole answer and its rewrite.
    events = await stream_events(
        api, key, "And which files does it skip?", path=f"/v1/conversations/{cid}/turns/stream"
    )
    done = events[-1]
    assert done[0] == "done" and done[1]["rewrite"]["method"] == "context"
    assert len((await api.get(f"/v1/conversations/{cid}", headers=key)).json()["turns"]) == 3

    # A title says what the conversation is about: even its first question is searched with it.
    titled = await _start(api, key, title="Failed files")
    opening = (await _ask(api, key, titled, FIRST))["rewrite"]
    assert isinstance(opening, dict) and opening["question"] == f"{FIRST} (about Failed files)"


async def test_a_conversation_is_its_owners_alone(api: httpx.AsyncClient, sampled: str, auth: Auth) -> None:
    owner, other = auth(sampled), auth(sampled)  # two keys of one tenant
    cid = await _start(api, owner)
    for resp in (
        await api.get(f"/v1/conversations/{cid}", headers=other),
        await api.post(f"/v1/conversations/{cid}/turns", json={"question": FIRST}, headers=other),
        await api.delete(f"/v1/conversations/{cid}", headers=other),
        await api.post("/v1/chat/completions", json=_chat(cid), headers=other),
    ):
        expect_error(resp, 404, "conversation_not_found")
    assert (await api.get("/v1/conversations", headers=other)).json()["data"] == []
    expect_error(await api.get("/v1/conversations/../etc", headers=owner), 404, "not_found")
    expect_error(await api.get("/v1/conversations/not-an-id", headers=owner), 400, "bad_input")
    expect_error(await api.get(f"/v1/conversations/{'0' * 32}", headers=owner), 404, "conversation_not_found")
    expect_error(await api.post("/v1/conversations", json={"title": "x" * 201}, headers=owner), 422, "invalid_request")
    assert (await api.get(f"/v1/conversations/{cid}", headers=owner)).status_code == 200


def _chat(cid: str) -> dict[str, object]:
    return {"model": "keel", "messages": [{"role": "user", "content": FIRST}], "conversation_id": cid}


async def test_chat_completions_continue_a_durable_conversation(
    api: httpx.AsyncClient, sampled: str, auth: Auth
) -> None:
    key = auth(sampled)
    cid = await _start(api, key)
    await _ask(api, key, cid, FIRST)
    resp = await api.post(
        "/v1/chat/completions",
        # the durable conversation holds the history: only the new question is read
        json={**_chat(cid), "messages": [{"role": "user", "content": FOLLOW_UP}]},
        headers=key,
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["keel"]["rewrite"]["conversation_id"] == cid
    assert len((await api.get(f"/v1/conversations/{cid}", headers=key)).json()["turns"]) == 2


async def test_a_deleted_conversation_is_gone_with_its_history(
    api: httpx.AsyncClient, client: Client, sampled: str, auth: Auth
) -> None:
    key = auth(sampled)
    cid = await _start(api, key)
    await _ask(api, key, cid, FIRST)
    assert (await api.delete(f"/v1/conversations/{cid}", headers=key)).status_code == 204
    expect_error(await api.get(f"/v1/conversations/{cid}", headers=key), 404, "conversation_not_found")
    expect_error(
        await api.post(f"/v1/conversations/{cid}/turns", json={"question": FIRST}, headers=key),
        404,
        "conversation_not_found",
    )
    with pytest.raises(RPCError):  # the history itself is deleted, not only the run ended
        for _ in range(50):
            await client.get_workflow_handle(conversation_workflow_id(sampled, cid)).describe()
            await asyncio.sleep(0.1)


async def test_an_idle_conversation_expires(
    api: httpx.AsyncClient, client: Client, settings: Settings, sampled: str, auth: Auth
) -> None:
    brief = settings.model_copy(update={"conversation_retention_s": 1.0})
    api._transport.app.dependency_overrides[get_settings] = lambda: brief  # type: ignore[attr-defined]
    key = auth(sampled)
    cid = await _start(api, key)
    handle = client.get_workflow_handle(conversation_workflow_id(sampled, cid))
    for _ in range(100):  # the workflow ends itself once idle for its retention
        if (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED:
            break
        await asyncio.sleep(0.1)
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
    expect_error(await api.get(f"/v1/conversations/{cid}", headers=key), 404, "conversation_not_found")
    assert (await api.get("/v1/conversations", headers=key)).json()["data"] == []


async def test_a_long_conversation_continues_as_new_with_its_turns(
    api: httpx.AsyncClient, client: Client, settings: Settings, redis_client: redis.Redis, sampled: str, auth: Auth
) -> None:
    key_record, token = KeyStore(redis_client).create(tenant=sampled, roles=["query"], name="test")
    key = {"Authorization": f"Bearer {token}"}
    cid = "c" * 32
    began = ConversationStart(
        tenant=sampled, conversation_id=cid, owner=key_record.key_id, created_at=time.time(),
        retention_s=3600, history_tokens=2000, query_task_queue=settings.query_task_queue, turns_per_run=2,
    )  # fmt: skip
    handle = await client.start_workflow(
        "Conversation", began, id=conversation_workflow_id(sampled, cid), task_queue=settings.conversation_queue
    )
    index.add(redis_client, sampled, key_record.key_id, cid)
    for question in (FIRST, FOLLOW_UP, "And which files does it skip?"):
        await _ask(api, key, cid, question)
    latest = client.get_workflow_handle(handle.id)
    assert (await latest.describe()).run_id != handle.first_execution_run_id  # it continued as new
    turns = (await api.get(f"/v1/conversations/{cid}", headers=key)).json()["turns"]
    assert [t["asked"] for t in turns] == [FIRST, FOLLOW_UP, "And which files does it skip?"]


async def test_erasing_a_tenant_ends_its_conversations(
    api: httpx.AsyncClient, client: Client, sampled: str, auth: Auth
) -> None:
    key, admin = auth(sampled), auth(sampled, roles=[ADMIN])
    cid = await _start(api, key)
    resp = await api.post("/v1/admin/tenant/erase", json={"confirm": sampled}, headers=admin)
    assert resp.status_code == 200, resp.text
    handle = client.get_workflow_handle(conversation_workflow_id(sampled, cid))
    for _ in range(50):
        if (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED:
            break
        await asyncio.sleep(0.1)
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
    expect_error(await api.get(f"/v1/conversations/{cid}", headers=key), 404, "conversation_not_found")
