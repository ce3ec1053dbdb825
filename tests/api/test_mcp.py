"""MCP at /mcp, asked with the MCP SDK's own client over streamable HTTP against the real stack:
the key's groups bound what every tool sees, and a refusal is a tool error with Keel's code."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from api.mcp import build_mcp, mounted
from gateway.keys import INGEST
from tests.api.conftest import Auth, wait_job

pytestmark = [pytest.mark.stack, pytest.mark.usefixtures("worker")]
QUESTION = "How do I retry failed files?"


@asynccontextmanager
async def _session(api: httpx.AsyncClient, headers: dict[str, str]) -> AsyncIterator[ClientSession]:
    app = api._transport.app  # type: ignore[attr-defined]
    app.state.mcp = mounted(build_mcp())  # a transport runs once: a fresh one per client session
    async with (
        app.state.mcp.session_manager.run(),  # what the app's lifespan runs in production
        httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://keel", headers=headers) as http,
        streamable_http_client("http://keel/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


async def _call(session: ClientSession, tool: str, **arguments: Any) -> tuple[bool, Any]:
    result = await session.call_tool(tool, arguments)
    if result.is_error:
        return True, result.content[0].text  # type: ignore[union-attr]
    return False, result.structured_content


async def test_search_fetch_and_answer_for_an_agent(api: httpx.AsyncClient, sampled: str, auth: Auth) -> None:
    async with _session(api, auth(sampled)) as session:
        tools = {t.name for t in (await session.list_tools()).tools}
        assert tools == {"search", "fetch", "answer"}

        failed, found = await _call(session, "search", query=QUESTION, limit=3)
        assert not failed and 1 <= len(found["passages"]) <= 3
        best = found["passages"][0]
        assert best["rank"] == 1 and best["source"].endswith("faq.txt") and "keel ingest" in best["text"].lower()

        failed, doc = await _call(session, "fetch", doc_id=best["doc_id"])
        assert not failed and doc["source"] == best["source"] and best["text"][:40] in doc["text"]

        failed, said = await _call(session, "answer", question=QUESTION)
        assert not failed and "[1]" in said["answer"] and said["citations"][0]["doc_id"] == best["doc_id"]

        failed, refused = await _call(session, "fetch", doc_id="nope")
        assert failed and "bad_input: " in refused and "(request " in refused


async def test_a_keys_groups_bound_what_every_tool_sees(api: httpx.AsyncClient, sampled: str, auth: Auth) -> None:
    writer = auth(sampled, roles=[INGEST], groups=["hr"])
    files = {"file": ("salaries.md", b"# Salaries\n\nThe quokka bonus is paid in March to the hr team.\n")}
    resp = await api.post("/v1/documents", files=files, data={"groups": "hr"}, headers=writer)
    assert resp.status_code == 202, resp.text
    done = await wait_job(api, resp.json()["job_id"], writer)
    secret = done["files"][0]["doc_id"]

    async with _session(api, auth(sampled, roles=["query"], groups=["hr"])) as insider:
        failed, found = await _call(insider, "search", query="quokka bonus")
        assert not failed and found["passages"][0]["doc_id"] == secret

    async with _session(api, auth(sampled, roles=["query"])) as outsider:
        failed, found = await _call(outsider, "search", query="quokka bonus")
        assert not failed and secret not in {p["doc_id"] for p in found["passages"]}
        failed, refused = await _call(outsider, "fetch", doc_id=secret)
        assert failed and "document_not_found: " in refused


async def test_mcp_needs_a_key_with_the_query_role(api: httpx.AsyncClient, sampled: str, auth: Auth) -> None:
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
    no_key = await api.post("/mcp", json=initialize)
    assert no_key.status_code == 401 and no_key.json()["error"]["code"] == "missing_key"
    ingest_only = await api.post("/mcp", json=initialize, headers=auth(sampled, roles=[INGEST]))
    assert ingest_only.status_code == 403 and ingest_only.json()["error"]["code"] == "role_forbidden"
