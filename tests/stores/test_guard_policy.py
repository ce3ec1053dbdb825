"""Each tenant's guardrail policy: overrides on the defaults, checked, and in force at once where it was written."""

from __future__ import annotations

import uuid

import pytest
import redis

from stores import guard_policy
from stores.guard_policy import GuardPolicy
from stores.keys import guard_key

DEFAULT = GuardPolicy()


def test_a_tenant_without_overrides_reads_the_defaults(redis_client: redis.Redis) -> None:
    assert guard_policy.read(redis_client, f"t-{uuid.uuid4().hex}", DEFAULT) == DEFAULT


def test_a_write_is_read_back_at_once_and_only_for_its_tenant(redis_client: redis.Redis) -> None:
    tenant, other = f"t-{uuid.uuid4().hex}", f"t-{uuid.uuid4().hex}"
    guard_policy.read(redis_client, tenant, DEFAULT)  # cached before the write: the write forgets it
    written = guard_policy.write(redis_client, tenant, DEFAULT, sources="exclude", grounding="retry")
    assert written == GuardPolicy(sources="exclude", grounding="retry")
    assert guard_policy.read(redis_client, tenant, DEFAULT) == written
    assert guard_policy.read(redis_client, other, DEFAULT) == DEFAULT


@pytest.mark.parametrize(
    "change", [{"questions": "quote"}, {"sources": "refuse"}, {"severe": "ignore"}, {"grounding": "allow"}]
)
def test_an_unknown_action_is_refused_and_nothing_is_written(redis_client: redis.Redis, change: dict[str, str]) -> None:
    tenant = f"t-{uuid.uuid4().hex}"
    with pytest.raises(ValueError, match="is not one of"):
        guard_policy.write(redis_client, tenant, DEFAULT, **change)  # type: ignore[arg-type]  # str actions
    assert redis_client.hgetall(guard_key(tenant)) == {}


def test_fields_it_does_not_know_are_ignored(redis_client: redis.Redis) -> None:
    tenant = f"t-{uuid.uuid4().hex}"
    redis_client.hset(guard_key(tenant), mapping={"questions": "refuse", "unknown": "x"})
    assert guard_policy.read(redis_client, tenant, DEFAULT) == GuardPolicy(questions="refuse")


def test_pii_actions_are_kept_per_entity_type_and_checked(redis_client: redis.Redis) -> None:
    tenant = f"t-{uuid.uuid4().hex}"
    assert guard_policy.read(redis_client, tenant, DEFAULT).pii_actions() == {}  # every type pseudonymised
    written = guard_policy.write(redis_client, tenant, DEFAULT, pii={"EMAIL_ADDRESS": "redact"})
    assert written.pii_actions() == {"EMAIL_ADDRESS": "redact"}
    both = guard_policy.write(redis_client, tenant, DEFAULT, pii={"PERSON": "keep"}, sources="exclude")
    assert both.pii_actions() == {"EMAIL_ADDRESS": "redact", "PERSON": "keep"} and both.sources == "exclude"
    assert guard_policy.read(redis_client, tenant, DEFAULT) == both
    with pytest.raises(ValueError, match="is not one of"):
        guard_policy.write(redis_client, tenant, DEFAULT, pii={"PERSON": "publish"})
    assert guard_policy.read(redis_client, tenant, DEFAULT).pii_actions()["PERSON"] == "keep"
