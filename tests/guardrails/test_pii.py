from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from guardrails.pii import WINDOW_CHARS, WINDOW_OVERLAP_CHARS, Redactor, could_name_a_person, windows
from guardrails.pseudonyms import Pseudonyms
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


def test_no_entity_types_means_nothing_is_redacted() -> None:
    """Presidio reads an empty list of entities as every entity it knows (dates, places, ...)."""
    none = Redactor([], 0.4, use_ner=True)
    text = "Jane Roe flew to Paris on 3 July 2024; mail jane@corp-mail.com."
    assert none.redact(text).text == text and none.find(text) == []


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


SAMPLES = [
    "Dr. Amara Okafor of Lagos University Hospital presented the trial in Geneva on 3 May 2021.",
    "Patients in Boston and Chicago were followed by Jonathan Miller for twelve weeks.",
    "BRCA1 carriers from Norway were compared with controls; Maria Keller analysed the data.",
    "No names here: the kinase binds ATP in the cleft.",
]


def test_the_trimmed_pipeline_finds_what_the_full_one_does(redactor: Redactor) -> None:
    """Only NER and a lower-case lemma run (no tagger, lemmatizer, parser or shared tok2vec):
    the entities are the full pipeline's."""
    import spacy

    from keel import offline

    model_dir = offline.spacy_model_dir()
    if model_dir is None:
        pytest.skip("the spaCy model package is not installed")
    trimmed = redactor._engine.nlp["en"]  # type: ignore[index]
    assert "tagger" not in trimmed.pipe_names and "lemmatizer" not in trimmed.pipe_names
    full = spacy.load(model_dir)
    for text in SAMPLES:
        got = [(e.start_char, e.end_char, e.label_) for e in trimmed(text).ents]
        assert got == [(e.start_char, e.end_char, e.label_) for e in full(text).ents]
        assert [t.lemma_ for t in trimmed(text)] == [t.lower_ for t in trimmed(text)]


def test_a_batch_finds_what_each_text_alone_does(redactor: Redactor) -> None:
    texts = [*SAMPLES, "", "Call me on +44 20 7946 0958 or write to a.b@example.org."]
    assert redactor.find_many(texts) == [redactor.find(t) for t in texts]
    assert redactor.find_many(texts)[4] == []
    redacted = redactor.redact_many(texts)
    assert redacted[-1].counts == {"EMAIL_ADDRESS": 1, "PHONE_NUMBER": 1}
    assert redacted[1].counts == {"PERSON": 1}


def test_phone_context_still_counts_without_the_lemmatizer(redactor: Redactor) -> None:
    """Presidio's context words are matched against lemmas; lower-cased tokens still carry them."""
    with_context, bare = redactor.find("Her phones: 212 555 0198."), redactor.find("Room 4: 212 555 0198.")
    assert [s.entity for s in with_context] == [s.entity for s in bare] == ["PHONE_NUMBER"]
    assert with_context[0].score > bare[0].score  # "phones" raised it, as the lemma "phone" did


@pytest.mark.parametrize(
    ("text", "could"),
    [
        ("Contact Maria Gonzalez today.", True),  # two capitalised words
        ("signed off by Jean-Luc", True),  # a hyphen splits one word into two names
        ("the patient Okafor was discharged", True),  # one word after a person cue
        ("The kinase binds ATP in the cleft. Results were robust.", False),
        ("IRF7 and TRF2 bind RNA in SiO2 particles.", False),
        ("", False),
    ],
)
def test_where_ner_is_needed(text: str, could: bool) -> None:
    assert could_name_a_person(text) is could


def test_skipping_ner_where_no_person_can_be_kept_changes_nothing(redactor: Redactor) -> None:
    texts = [
        *SAMPLES,
        "Results: the Kaplan-Meier estimate fell. Hazard ratios were 0.7. Dear Okafor, thanks.",
        "In Vivo and In Vitro assays of Factor V Leiden agreed; call 212 555 0198.",
        "the study was led by professor alan turing at manchester",
    ]
    gated = redactor.find_many(texts)
    tokens_only, redactor._tokens_only = redactor._tokens_only, None
    try:
        assert gated == redactor.find_many(texts)
    finally:
        redactor._tokens_only = tokens_only


def test_phone_numbers_found_as_presidio_finds_them_scanning_fewer_regions() -> None:
    """Skipping the regions no run of digits could be a number of changes nothing found: numbers of
    every length, separator and country code, in text full of other figures."""
    import random

    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    from guardrails.pii import _phone_numbers

    rng = random.Random(7)
    separators = ["", " ", "-", ".", "/", " - ", ") ", "\u00a0"]
    texts = []
    for _ in range(400):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(3, 14)))
        cut = sorted(rng.sample(range(1, len(digits)), k=min(len(digits) - 1, rng.randint(0, 3))))
        parts = [digits[a:b] for a, b in zip([0, *cut], [*cut, len(digits)], strict=True)]
        number = "".join(p + (rng.choice(separators) if i < len(parts) - 1 else "") for i, p in enumerate(parts))
        if rng.random() < 0.3:
            number = f"+{rng.choice(['1', '44', '49', '33', '972', '91', '55', '354'])} {number}"
        if rng.random() < 0.2:
            number = f"({number[:3]}) {number[3:]}"
        filler = rng.choice(["p < 0.001", "95% CI 1.2-3.4", "in 1990-2000", "n = 1,234", "", "tel."])
        texts.append(f"Patients ({filler}) can call {number} today; {rng.randint(1, 99)}% said so.")
    ours, presidio = _phone_numbers(), PhoneRecognizer()
    found = 0
    for text in texts:
        mine = sorted((r.start, r.end, r.score) for r in ours.analyze(text, ["PHONE_NUMBER"]))
        assert mine == sorted((r.start, r.end, r.score) for r in presidio.analyze(text, ["PHONE_NUMBER"])), text
        found += bool(mine)
    assert found > 50  # the sample holds real numbers, not only misses


def test_with_a_tenants_pseudonyms_a_name_is_the_same_token_in_every_text(redactor: Redactor) -> None:
    names = Pseudonyms(b"k" * 32)
    texts = ["Scott Derrickson directed the film.", "Mail Scott Derrickson at scott@example.com today."]
    first, second = redactor.redact_many(texts, names)
    token = names.token("PERSON", "Scott Derrickson")
    assert token in first.text and token in second.text and "Derrickson" not in first.text + second.text
    assert second.tokens[token] == "Scott Derrickson" and second.counts == {"PERSON": 1, "EMAIL_ADDRESS": 1}
    # without them, the blank placeholders as before
    assert redactor.redact(texts[0]).text == "<PERSON> directed the film."
