"""Tenants' data keys: made once and shared by every process, wrapped at rest, gone with `destroy`."""

from __future__ import annotations

import secrets
import uuid

import pytest
import redis

from keel.keyring import KeyRing
from stores.data_keys import TenantKeys
from stores.keys import data_key_key

pytestmark = [pytest.mark.stack]


def test_one_key_per_tenant_wrapped_at_rest_and_destroyed_for_good(redis_client: redis.Redis) -> None:
    ring = KeyRing(active="k1", keys={"k1": secrets.token_bytes(32)})
    tenant, other = f"t{uuid.uuid4().hex[:8]}", f"t{uuid.uuid4().hex[:8]}"
    first, second = TenantKeys(lambda: redis_client, ring), TenantKeys(lambda: redis_client, ring)
    key_id, key = first.current(tenant)
    assert second.current(tenant) == (key_id, key)  # two processes agree on one key
    assert first.current(other)[1] != key  # each tenant its own
    assert key.hex() not in str(redis_client.get(data_key_key(tenant)))  # only wrapped in Redis
    rotated = TenantKeys(lambda: redis_client, KeyRing(active="k2", keys={**ring.keys, "k2": secrets.token_bytes(32)}))
    assert rotated.get(tenant, key_id) == key  # a ring rotation still unwraps what the old key wrapped

    assert first.destroy(tenant)
    assert second.get(tenant, key_id, fresh=True) is None  # gone, for every process
    assert TenantKeys(lambda: redis_client, ring).get(tenant, key_id) is None
    assert first.current(tenant)[0] != key_id  # a tenant made again gets a new key
