"""Prompt releases on a real Redis: labels per tenant over the global ones, a sticky canary share,
and a kill switch that returns the previous version at once."""

from __future__ import annotations

import uuid

import pytest
import redis

from app import prompts
from gateway.audit import Audit
from keel.errors import BadInput


def test_a_tenant_release_wins_and_rollback_returns_the_previous_version(redis_client: redis.Redis) -> None:
    r, tenant = redis_client, f"p{uuid.uuid4().hex[:8]}"
    assert prompts.assign(r, tenant, "k1", json_answer=False).label == "default"
    prompts.promote(r, tenant, "answer.v1", None)
    got = prompts.assign(r, tenant, "k1", json_answer=False)
    assert (got.prompt_id, got.label, got.scope) == ("answer.v1", "production", tenant)
    assert prompts.assign(r, f"{tenant}x", "k1", json_answer=False).label == "default"  # another tenant
    prompts.promote(r, tenant, "answer.v2", None)
    assert prompts.assign(r, tenant, "k1", json_answer=False).prompt_id == "answer.v2"
    prompts.rollback(r, tenant, "answer")  # the kill switch
    assert prompts.assign(r, tenant, "k1", json_answer=False).prompt_id == "answer.v1"
    prompts.rollback(r, tenant, "answer")  # nothing before it: the shipped default
    assert prompts.assign(r, tenant, "k1", json_answer=False).label == "default"
    events = [e.event for e in Audit(r).read(tenant)]
    assert events.count("prompt_promoted") == 2 and events.count("prompt_rolled_back") == 2


def test_a_canary_goes_to_a_sticky_share_of_callers(redis_client: redis.Redis) -> None:
    r, tenant = redis_client, f"p{uuid.uuid4().hex[:8]}"
    prompts.promote(r, tenant, "answer.v2", None)
    prompts.promote(r, tenant, "answer.v1", 0.3)
    first = {f"key{i}": prompts.assign(r, tenant, f"key{i}", json_answer=False) for i in range(400)}
    canary = [k for k, a in first.items() if a.label == "canary"]
    assert 0.2 < len(canary) / 400 < 0.4
    assert all(first[k].prompt_id == "answer.v1" for k in canary)
    again = {k: prompts.assign(r, tenant, k, json_answer=False).label for k in first}
    assert again == {k: a.label for k, a in first.items()}  # the same caller, the same side
    assert prompts.assign(r, tenant, "key0", json_answer=True).label == "default"  # JSON answers: their own family
    prompts.rollback(r, tenant, "answer")
    assert all(prompts.assign(r, tenant, k, json_answer=False).label != "canary" for k in canary)


@pytest.mark.parametrize(
    ("version", "share"), [("answer.v9", None), ("nothing.v1", None), ("answer.v1", 1.5), ("../etc.v1", None)]
)
def test_unknown_versions_and_shares_are_refused(redis_client: redis.Redis, version: str, share: float | None) -> None:
    with pytest.raises(BadInput):
        prompts.promote(redis_client, f"p{uuid.uuid4().hex[:8]}", version, share)
