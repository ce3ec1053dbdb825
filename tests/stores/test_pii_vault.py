"""The pseudonym vault against real Redis: originals sealed at rest, held while a document holds
them, unreadable once the tenant's key is destroyed."""

from __future__ import annotations

import secrets

import pytest
import redis

from guardrails.pseudonyms import Pseudonyms
from keel.keyring import KeyRing
from stores.data_keys import TenantKeys
from stores.keys import pii_vault_key
from stores.pii_vault import PiiVault

pytestmark = [pytest.mark.stack]


def _vault(redis_client: redis.Redis) -> PiiVault:
    return PiiVault(
        redis_client, TenantKeys(lambda: redis_client, KeyRing(active="k1", keys={"k1": secrets.token_bytes(32)}))
    )


def test_originals_are_sealed_and_revealed_by_token(redis_client: redis.Redis, tenant: str) -> None:
    vault = _vault(redis_client)
    names = Pseudonyms(vault.secret(tenant))
    scott, ed = names.token("PERSON", "Scott Derrickson"), names.token("PERSON", "Ed Wood")
    assert vault.keep(tenant, "d1", {scott: "Scott Derrickson", ed: "Ed Wood"}) == 2
    stored = " ".join(str(v) for v in redis_client.hvals(pii_vault_key(tenant)))
    assert "Scott" not in stored and "Wood" not in stored  # sealed at rest
    assert vault.reveal(tenant, [scott, ed, "PERSON_aaaaaaaa"]) == {scott: "Scott Derrickson", ed: "Ed Wood"}
    assert vault.known(tenant, [scott, "PERSON_aaaaaaaa"]) == {scott}
    # the secret is stable for the tenant and different for another
    assert Pseudonyms(vault.secret(tenant)).token("PERSON", "Ed Wood") == ed
    assert Pseudonyms(vault.secret(tenant + "x")).token("PERSON", "Ed Wood") != ed


def test_an_original_goes_with_the_last_document_that_holds_it(redis_client: redis.Redis, tenant: str) -> None:
    vault = _vault(redis_client)
    names = Pseudonyms(vault.secret(tenant))
    scott, ed = names.token("PERSON", "Scott Derrickson"), names.token("PERSON", "Ed Wood")
    vault.keep(tenant, "d1", {scott: "Scott Derrickson", ed: "Ed Wood"})
    vault.keep(tenant, "d2", {scott: "Scott Derrickson"})
    assert vault.keep(tenant, "d2", {scott: "Scott Derrickson"}) == 0  # a re-ingest counts once
    assert vault.forget_document(tenant, "d1") == 1  # Ed Wood was d1's alone
    assert vault.reveal(tenant, [scott, ed]) == {scott: "Scott Derrickson"}
    assert vault.forget_document(tenant, "d2") == 1
    assert vault.reveal(tenant, [scott]) == {} and vault.known(tenant, [scott]) == set()
    assert vault.forget_document(tenant, "d2") == 0


def test_a_destroyed_tenant_key_leaves_only_noise(redis_client: redis.Redis, tenant: str) -> None:
    vault = _vault(redis_client)
    token = Pseudonyms(vault.secret(tenant)).token("PERSON", "Ed Wood")
    vault.keep(tenant, "d1", {token: "Ed Wood"})
    vault.keys.destroy(tenant)
    assert vault.reveal(tenant, [token]) == {}
