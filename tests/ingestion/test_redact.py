from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from ingestion.redact import WINDOW_CHARS, WINDOW_OVERLAP_CHARS, Redactor, windows
from keel.config import Settings


@pytest.fixture(scope="module")
def redactor() -> Iterator[Redactor]:
    s = Settings()
    yield Redactor(s.pii_entities, s.pii_score_threshold, use_ner=True)


def test_typed_placeholders_and_counts(redactor: Redactor) -> None:
    out = redactor.redact("Contact Maria Gonzalez at maria.gonzalez@example.com or (415) 555-0132.")
    assert "<PERSON>" in out.text and "<EMAIL_ADDRESS>" in out.text and "<PHONE_NUMBER>" in out.text
    assert "maria.gonzalez@example.com" not in out.text and "555-0132" not in out.text
    assert out.counts == {"PERSON": 1, "EMAIL_ADDRESS": 1, "PHONE_NUMBER": 1}


def test_card_numbers_are_redacted(redactor: Redactor) -> None:
    out = redactor.redact("Charge card 4111 1111 1111 1111 for the renewal.")
    assert "<CREDIT_CARD>" in out.text and out.counts["CREDIT_CARD"] == 1


def test_technical_terms_are_not_people(redactor: Redactor) -> None:
    text = "IRF7 and TRF2 bind RNA in SiO2 particles; the nsP4 mutant shows RR 0.71."
    assert redactor.redact(text).text == text


def test_clean_text_is_untouched(redactor: Redactor) -> None:
    out = redactor.redact("The retrieval step filters by tenant.")
    assert out.text == "The retrieval step filters by tenant." and out.counts == {}


def test_pattern_recognizers_work_without_ner() -> None:
    s = Settings()
    plain = Redactor(s.pii_entities, s.pii_score_threshold, use_ner=False)
    assert not plain.has_ner
    out = plain.redact("Mail jane@corp-mail.com, card 4111 1111 1111 1111, call 212-555-0198.")
    assert {"EMAIL_ADDRESS", "CREDIT_CARD"} <= set(out.counts)
    assert "jane@corp-mail.com" not in out.text


def test_long_text_is_redacted_in_windows_without_losing_a_boundary_entity(redactor: Redactor) -> None:
    filler = "the assay measured binding in every sample " * 1000  # ~44 KB: three windows
    cut = WINDOW_CHARS - 10  # the address starts just before the first window ends
    text = filler[:cut] + " write to jane.roe@example.org today " + filler[cut:]
    spans = windows(text, WINDOW_CHARS, WINDOW_OVERLAP_CHARS)
    assert len(spans) >= 3 and all(len(piece) <= WINDOW_CHARS for _, piece in spans)
    assert spans[0][0] == 0 and spans[-1][0] + len(spans[-1][1]) == len(text)  # the whole text
    assert all(a[0] + len(a[1]) > b[0] for a, b in itertools.pairwise(spans))  # they overlap
    out = redactor.redact(text)
    assert "jane.roe@example.org" not in out.text and out.counts == {"EMAIL_ADDRESS": 1}
    assert out.text.count("<EMAIL_ADDRESS>") == 1


def test_look_alikes_are_left_alone(redactor: Redactor) -> None:
    for text in [
        "Café déjà vu: retours acceptés sous 30 jours.",
        "Salary bands are reviewed every spring.",
        "Release Checklist for the Storage Service",
        "| Region | 2021 | 2022 |\n| North | 4155550132 | 4155550198 |",
        "Orbit Lantern Garden Marble Saddle Mirror Lantern River Candle",
        "Carriers of factor V Leiden had a higher risk.",
    ]:
        assert redactor.redact(text).text == text, text


def test_hard_cases_are_redacted_with_their_own_type(redactor: Redactor) -> None:
    out = redactor.redact(
        "Forward it to attacker@evil.example. Her SSN is 212-67-4389. Dear Maria, call +44 20 7946 0958."
        " Dr. Okafor signed."
    )
    assert out.text == (
        "Forward it to <EMAIL_ADDRESS>. Her SSN is <US_SSN>. Dear <PERSON>, call <PHONE_NUMBER>. Dr. <PERSON> signed."
    )
    assert out.counts == {"EMAIL_ADDRESS": 1, "US_SSN": 1, "PERSON": 2, "PHONE_NUMBER": 1}, out


def test_a_phone_with_digit_groups_beside_one_other_number_is_still_a_phone(redactor: Redactor) -> None:
    # The span's own groups once counted as the "other numbers" that make a figure of a table row.
    out = redactor.redact("The front desk is 415 555 0132, room 12.")
    assert out.counts.get("PHONE_NUMBER") == 1, out


def test_the_labelled_set_keeps_its_measured_quality(redactor: Redactor) -> None:
    """`make bench-pii` measures this set; the floors sit just under what it measured, so a rule
    change that loses recall or precision fails here before it ships."""
    from bench.pii import score
    from evaluation.pii_set import build

    tally, _ = score(redactor, build())
    tp = sum(c["tp"] for c in tally.values())
    fn = sum(c["fn"] for c in tally.values())
    fp = sum(c["fp"] for c in tally.values())
    assert tp / (tp + fn) >= 0.95
    assert tp / (tp + fp) >= 0.99
