"""POST /v1/feedback: tied to an answer and the versions that made it; only the key that asked may
rate it; an answer rated down is not served from a cache again, nor generated on kept rankings."""

from __future__ import annotations

import httpx
import pytest
import redis

from gateway.keys import QUERY
from stores.feedback import given
from tests.api.conftest import Auth
from tests.api.test_cache import ask, until_cached

pytestmark = [pytest.mark.stack, pytest.mark.usefixtures("worker")]


async def rate(api: httpx.AsyncClient, headers: dict[str, str], request_id: str, **body: str) -> httpx.Response:
    return await api.post("/v1/feedback", json={"request_id": request_id, "rating": "down", **body}, headers=headers)


async def test_a_cached_answer_rated_down_is_not_served_again(
    api: httpx.AsyncClient, redis_client: redis.Redis, sampled: str, auth: Auth
) -> None:
    reader = auth(sampled, roles=(QUERY,))
    first = await ask(api, reader)
    hit = await until_cached(api, reader)
    resp = await rate(api, reader, hit["request_id"], reason="wrong, write to ann@example.com")
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"request_id": hit["request_id"], "rating": "down", "cache": "exact", "purged": True}
    assert (await ask(api, reader))["cache"] == "miss"  # retrieved and answered afresh (and kept again)
    # Kept with what made the answer; the free text redacted like a question.
    (kept,) = [f for f in given(redis_client, sampled) if f["request_id"] == hit["request_id"]]
    assert kept["answer"]["embedding_version"] == first["embedding_version"]
    assert kept["answer"]["generation"] == first["generation"] and kept["answer"]["cache"] == "exact"
    assert "ann@example.com" not in kept["reason"] and kept["reason"].startswith("wrong")


async def test_a_paraphrase_hit_rated_down_is_not_served_again(
    api: httpx.AsyncClient, sampled: str, auth: Auth
) -> None:
    reader = auth(sampled, roles=(QUERY,))
    await ask(api, reader)
    await until_cached(api, reader)
    para = await ask(api, reader, question="How can I retry files that failed?")
    assert para["cache"] == "semantic"
    resp = await rate(api, reader, para["request_id"])
    assert resp.status_code == 200 and resp.json()["purged"] is True
    assert (await ask(api, reader, question="How can I retry files that failed?"))["cache"] != "semantic"


async def test_only_the_key_that_asked_may_rate_an_answer(api: httpx.AsyncClient, sampled: str, auth: Auth) -> None:
    reader = auth(sampled, roles=(QUERY,))
    answered = await ask(api, reader)
    other_key = auth(sampled, roles=(QUERY,))
    for headers, request_id in ((other_key, answered["request_id"]), (reader, "no-such-request")):
        resp = await rate(api, headers, request_id)
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"
        assert resp.json()["error"]["request_id"]
    bad = await api.post("/v1/feedback", json={"request_id": answered["request_id"], "rating": "meh"}, headers=reader)
    assert bad.status_code == 422 and bad.json()["error"]["code"]
    nul = await rate(api, reader, answered["request_id"], reason="wrong\x00answer")
    assert nul.status_code == 400 and nul.json()["error"]["code"] == "invalid_text"
    up = await api.post("/v1/feedback", json={"request_id": answered["request_id"], "rating": "up"}, headers=reader)
    assert up.status_code == 200 and up.json()["purged"] is False and up.json()["cache"] == "miss"
    down = await rate(api, reader, answered["request_id"])  # a fresh answer rated down: what was kept of it goes
    assert down.status_code == 200 and down.json()["purged"] is True
    assert (await ask(api, reader))["cache"] == "miss"
