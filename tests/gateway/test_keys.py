"""API keys against a real Redis: only a hash is stored, and a key resolves to its principal."""

from __future__ import annotations

import pytest
import redis

from gateway.keys import ADMIN, QUERY, KeyStore
from keel.errors import BadInput, GroupNotHeld, InvalidKey, InvalidTenant, MissingKey, NotFound, RevokedKey


def test_a_key_resolves_to_its_principal_and_only_its_hash_is_kept(redis_client: redis.Redis, tenant: str) -> None:
    store = KeyStore(redis_client)
    record, token = store.create(tenant=tenant, roles=[QUERY, QUERY], groups=["hr", "eng"], name="app")
    assert token.startswith("keel_" + record.key_id + "_") and len(token.split("_", 2)[2]) >= 43
    assert token not in str(redis_client.hgetall(f"keel:apikey:{record.key_id}"))
    who = store.resolve(token)
    assert (who.tenant, who.roles, who.groups) == (tenant, frozenset({QUERY}), ("eng", "hr"))
    assert who.narrowed(["hr"]).groups == ("hr",)
    with pytest.raises(GroupNotHeld):
        who.narrowed(["finance"])
    assert [k.key_id for k in store.list(tenant)] == [record.key_id]


def test_bad_keys_and_revocation(redis_client: redis.Redis, tenant: str) -> None:
    store = KeyStore(redis_client)
    record, token = store.create(tenant=tenant, roles=[ADMIN])
    for bad, error in [(None, MissingKey), ("", MissingKey), ("keel_", InvalidKey), ("x" * 500, InvalidKey)]:
        with pytest.raises(error):
            store.resolve(bad)
    with pytest.raises(InvalidKey):
        store.resolve(token[:-1] + ("A" if token[-1] != "A" else "B"))
    with pytest.raises(NotFound):
        store.revoke(record.key_id, tenant + "x")  # another tenant's admin cannot revoke it
    store.revoke(record.key_id, tenant)
    with pytest.raises(RevokedKey):
        store.resolve(token)
    with pytest.raises(BadInput):
        store.create(tenant=tenant, roles=["root"])
    with pytest.raises(InvalidTenant):
        store.create(tenant="Bad Tenant", roles=[QUERY])
