from __future__ import annotations

from contracts.query import Citation, QueryOutput
from evaluation.answers import Gold, f1, normalize, score, summary


def _out(answer: str, *, cites: str = "", no_sources: bool = False, clarifying: bool = False) -> QueryOutput:
    citations = [Citation(ref=1, doc_id="k1", version="v", source="s", section_path=[], snippet="")] if cites else []
    return QueryOutput(
        request_id="r",
        answer=answer,
        citations=citations,
        degradations=[],
        timings_ms={},
        route="strong",
        provider="extractive",
        prompt_id="answer.v1",
        supported_rate=1.0,
        no_sources=no_sources,
        clarifying=clarifying,
    )


def test_squad_normalisation_and_f1() -> None:
    assert normalize("The  Normans, in France!") == "normans in france"
    assert f1("10th and 11th centuries", "the 10th and 11th centuries") == 1.0  # articles do not count
    assert round(f1("Normandy, a region of France", "France"), 3) == round(2 * (1 / 4) * 1 / (1 / 4 + 1), 3)
    assert f1("nothing alike", "France") == 0.0


def test_answers_are_scored_and_declines_counted() -> None:
    gold = Gold(question_id="q", answers=["France"], impossible=False, context_id="Normans_000")
    mapping = {"k1": "Normans_000"}
    hit = score(gold, _out("Normandy is a region in France [1].", cites="k1"), mapping)
    assert hit.contains and hit.cited_gold and not hit.declined and hit.f1 > 0
    miss = score(gold, _out("It is in Denmark [1].", cites="k1"), mapping)
    assert not miss.contains and miss.f1 == 0.0
    wrongly_declined = score(gold, _out("No sources: ...", no_sources=True), mapping)
    assert wrongly_declined.declined and not wrongly_declined.contains

    impossible = Gold(question_id="u", answers=[], impossible=True, context_id="Normans_000")
    said_no = score(impossible, _out("The documents do not say when that happened."), mapping)
    answered_anyway = score(impossible, _out("In 1066 [1].", cites="k1"), mapping)
    assert said_no.declined and not answered_anyway.declined

    m = summary([hit, miss, wrongly_declined, said_no, answered_anyway])
    assert (m["answerable"], m["unanswerable"]) == (3, 2)
    assert m["answer_contains"] == 1 / 3 and m["abstain_answerable"] == 1 / 3 and m["abstain_unanswerable"] == 0.5
