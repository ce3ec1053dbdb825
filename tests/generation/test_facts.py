"""The fact check: a passage that lacks a claim's number, negation or name cannot support it."""

from __future__ import annotations

import pytest

from generation import facts
from generation.grounding import Grounder
from tests.helpers import context_passage

PASSAGE = (
    "Stage 3 is the final stage of the bill. Each sitting day, normally at 5 pm, MSPs decide on all the "
    "motions. The Solicitor General for Scotland and the Lord Advocate are not elected. Imperialism is "
    "administered by formal or informal means. About five men studied at Harvard for every woman at "
    "Radcliffe. The Scottish Parliament meets in Edinburgh; Harvard's dorms were built in 1,930 days."
)


@pytest.mark.parametrize(
    ("claim", "question", "missing"),
    [
        ("Stage 3 is the final stage of the bill.", "", []),
        ("Stage 4 is the final stage of the bill.", "", ["4"]),
        ("At 5 pm MSPs decide on the motions.", "", []),
        ("At 5 am MSPs decide on the motions.", "", ["5 am"]),
        ("Imperialism is never administered by formal or informal means.", "", ["never"]),
        ("The Lord Advocate is not elected.", "", []),
        ("The Solicitor Official of Scotland is not elected.", "", ["Solicitor Official of Scotland"]),
        ("The Solicitor General for Scotland is not elected.", "", []),
        # A sentence's first word is capitalised by grammar, not a name...
        ("Elected members decide on the motions.", "", []),
        # ...unless it repeats the question's own word, which the passage never uses.
        ("Presidents decide on the motions.", "Presidents decide on what?", ["Presidents"]),
        ("Five men studied at Harvard for every woman.", "", []),
        ("The ratio was 5 men to 1 woman at Harvard.", "", ["1"]),  # "five" is 5; nothing says one
        ("The SP meets in Edinburgh.", "", []),  # the initials of a name the passage has
        ("Harvard's dorms took 1930 days.", "", []),
        ("The dorms of Yale took 1930 days.", "", ["Yale"]),
        ('Imperialism is "administered by formal or informal means".', "", []),
        ('Imperialism is "administered by formal means".', "", ['"administered by formal means"']),
    ],
)
def test_the_claims_facts_must_be_in_the_passage(claim: str, question: str, missing: list[str]) -> None:
    assert facts.claimed(claim, question).missing_from(facts.source(PASSAGE)) == missing


def test_a_passage_that_lacks_a_fact_does_not_support_the_claim_however_close_its_words() -> None:
    passage = context_passage(1, PASSAGE)
    grounder = Grounder(None)
    right = grounder.ground("Stage 3 is the final stage of the bill.", [passage])
    assert right.refs == [1] and not right.ungrounded
    # Every word but one is in the passage: word overlap alone would cite it.
    wrong = grounder.ground("Stage 4 is the final stage of the bill.", [passage])
    assert wrong.refs == [] and wrong.ungrounded and wrong.unsupported == ["Stage 4 is the final stage of the bill."]
