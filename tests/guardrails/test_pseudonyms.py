"""Keyed pseudonyms: one token per value and tenant, typed, reversible only through the vault."""

from __future__ import annotations

import pytest

from guardrails.pseudonyms import Found, Pseudonyms, fold, reveal, tokens_in

TEXT = "Scott Derrickson met Ed Wood; mail scott@example.com. SCOTT DERRICKSON'S film won."


def _spans(text: str) -> list[Found]:
    spans = []
    for value, entity in (
        ("Scott Derrickson", "PERSON"),
        ("Ed Wood", "PERSON"),
        ("scott@example.com", "EMAIL_ADDRESS"),
    ):
        at = text.find(value)
        spans.append(Found(entity=entity, start=at, end=at + len(value)))
    last = text.find("SCOTT DERRICKSON'S")
    spans.append(Found(entity="PERSON", start=last, end=last + len("SCOTT DERRICKSON'S")))
    return sorted(spans, key=lambda s: s.start)


def test_the_same_value_is_the_same_typed_token_and_another_tenant_gets_another() -> None:
    acme, globex = Pseudonyms(b"a" * 32), Pseudonyms(b"b" * 32)
    done = acme.replace(TEXT, _spans(TEXT))
    scott = acme.token("PERSON", "Scott Derrickson")
    assert done.text.count(scott) == 2  # folded: case and the possessive do not make a new person
    assert scott.startswith("PERSON_") and len(scott) == len("PERSON_") + 8
    assert "Scott" not in done.text and "example.com" not in done.text
    assert done.counts == {"PERSON": 3, "EMAIL_ADDRESS": 1}
    assert done.tokens[scott] == "Scott Derrickson" and len(done.tokens) == 3
    assert globex.token("PERSON", "Scott Derrickson") != scott
    assert acme.token("PERSON", "Scott Derrickson") != acme.token("LOCATION", "Scott Derrickson")


def test_a_tenant_chooses_per_entity_type() -> None:
    chosen = Pseudonyms(b"a" * 32, {"EMAIL_ADDRESS": "redact", "PERSON": "keep"})
    done = chosen.replace(TEXT, _spans(TEXT))
    assert "Scott Derrickson met Ed Wood" in done.text and "<EMAIL_ADDRESS>" in done.text
    assert done.tokens == {} and done.counts == {"EMAIL_ADDRESS": 1}


def test_tokens_are_found_and_revealed_and_an_unknown_one_never_shows_raw() -> None:
    acme = Pseudonyms(b"a" * 32)
    done = acme.replace(TEXT, _spans(TEXT))
    assert tokens_in(done.text) == list(done.tokens)
    assert reveal(done.text, done.tokens) == TEXT.replace("SCOTT DERRICKSON'S", "Scott Derrickson'S")
    hidden = reveal(done.text, {})
    assert tokens_in(hidden) == [] and "[person]" in hidden and "[email address]" in hidden


@pytest.mark.parametrize(("a", "b"), [("Ed  Wood", "ed wood"), ("Ed Wood's", "ED WOOD"), (" Ed Wood ", "Ed Wood’s")])
def test_values_fold_alike(a: str, b: str) -> None:
    assert fold(a) == fold(b)
