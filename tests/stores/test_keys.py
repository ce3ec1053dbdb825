"""Every Redis key in one place, and which of them are a tenant's: exact, never a glob; each
tenant's keys in one cluster slot."""

from __future__ import annotations

import inspect

from redis.crc import key_slot

from stores import keys
from stores.keys import data_key_key, doc_key, job_files_key, job_key, limit_key, matches, owned


def test_a_tenants_record_keys_are_its_own() -> None:
    assert owned(doc_key("acme", "d1"), "acme")
    assert not owned(doc_key("acme", "d1"), "acm")  # a prefix of another tenant's name
    assert not owned(doc_key("acme", "d1"), "acme-2")


def test_names_that_look_like_patterns_match_nothing_else() -> None:
    assert not owned(doc_key("acme", "d1"), "*")
    assert not owned("keel:apikey:abc", "key")  # a global key, whatever the tenant is called


def test_a_pattern_is_a_whole_key_or_a_prefix_ending_at_a_separator() -> None:
    assert matches("keel:doc:{acme}:d1", "keel:doc:{acme}:*")
    assert not matches("keel:doc:{acme}:", "keel:doc:{acme}:*")  # the prefix alone is not a key under it
    assert not matches("keel:doc:{acme2}:d1", "keel:doc:{acme}:*")
    assert matches("keel:dek:{acme}", data_key_key("acme"))


def _tenant_keys(tenant: str) -> list[str]:
    """Every key function of `stores.keys` whose first argument is the tenant, called for it."""
    made = []
    for name, fn in inspect.getmembers(keys, inspect.isfunction):
        params = list(inspect.signature(fn).parameters)
        if fn.__module__ != keys.__name__ or not params or params[0] != "tenant":
            continue
        if name in ("owned", "tenant_patterns", "tenant_record_patterns", "_limiter_counters"):
            continue
        made.append(fn(tenant, *(["x"] * (len(params) - 1))))
    return made


def test_every_key_of_a_tenant_lies_in_one_cluster_slot() -> None:
    made = _tenant_keys("acme")
    assert len(made) > 25  # the key functions were found
    assert {key_slot(k.encode()) for k in made} == {key_slot(b"{acme}")}
    # the limiter's counters of the tenant's keys too: one admission checks both in one script
    assert key_slot(limit_key("acme", "key", "k1", "rpm").encode()) == key_slot(b"{acme}")


def test_a_jobs_keys_share_its_slot() -> None:
    assert key_slot(job_key("j1").encode()) == key_slot(job_files_key("j1").encode())
