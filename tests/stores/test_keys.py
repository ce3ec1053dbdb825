"""Every Redis key in one place, and which of them are a tenant's: exact, never a glob."""

from __future__ import annotations

from stores.keys import data_key_key, doc_key, matches, owned


def test_a_tenants_record_keys_are_its_own() -> None:
    assert owned(doc_key("acme", "d1"), "acme")
    assert not owned(doc_key("acme", "d1"), "acm")  # a prefix of another tenant's name
    assert not owned(doc_key("acme", "d1"), "acme-2")


def test_names_that_look_like_patterns_match_nothing_else() -> None:
    assert not owned(doc_key("acme", "d1"), "*")
    assert not owned("keel:apikey:abc", "key")  # a global key, whatever the tenant is called


def test_a_pattern_is_a_whole_key_or_a_prefix_ending_at_a_separator() -> None:
    assert matches("keel:doc:acme:d1", "keel:doc:acme:*")
    assert not matches("keel:doc:acme:", "keel:doc:acme:*")  # the prefix alone is not a key under it
    assert not matches("keel:doc:acme2:d1", "keel:doc:acme:*")
    assert matches("keel:dek:acme", data_key_key("acme"))
