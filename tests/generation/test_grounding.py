"""Grounding: every claim of an answer is sourced, whoever wrote (or forgot) the citations."""

from __future__ import annotations

import pytest

from encoders.registry import Encoders
from generation.grounding import Grounder, evidence
from generation.providers import Generation, GenerationRequest, ProviderError
from generation.terms import stems
from generation.validate import check_citations
from generation.verify import Verifier
from index.active import DEFAULT_ENCODER, encoder_catalog
from keel.config import Settings
from tests.helpers import context_passage

PASSAGES = [
    context_passage(
        1,
        "The Eiffel Tower was finished in 1889 for the World's Fair. It was designed by the engineering "
        "company of Gustave Eiffel and is 330 metres tall.",
    ),
    context_passage(
        2,
        "Failed files are retried by running keel ingest again on the same paths. Files that were "
        "already ingested are skipped, so only the failures run again.",
    ),
]


@pytest.fixture(scope="module")
def embed() -> object:
    settings = Settings()
    encoder = Encoders(threads=1, batch_size=32).get(encoder_catalog(settings)[DEFAULT_ENCODER])
    return lambda texts: encoder.embed(texts)


def test_an_answer_without_citations_gets_them_from_the_passages_that_support_it() -> None:
    text = "Run keel ingest again on the same paths to retry failed files. The Eiffel Tower is 330 metres tall."
    g = Grounder(None).ground(text, PASSAGES)
    assert g.source == "attributed" and not g.ungrounded
    assert g.text == (
        "Run keel ingest again on the same paths to retry failed files [2]. The Eiffel Tower is 330 metres tall [1]."
    )
    assert g.refs == [2, 1] and g.supported_rate == 1.0


def test_a_right_citation_stays_a_wrong_one_is_replaced() -> None:
    right = Grounder(None).ground("The Eiffel Tower was finished in 1889 for the World's Fair [1].", PASSAGES)
    assert right.source == "model" and right.refs == [1]
    wrong = Grounder(None).ground("The Eiffel Tower was finished in 1889 for the World's Fair [2].", PASSAGES)
    assert wrong.source == "attributed" and wrong.refs == [1] and "[2]" not in wrong.text
    both = Grounder(None).ground(
        "The Eiffel Tower was finished in 1889 [1]. Failed files are retried by running keel ingest again.", PASSAGES
    )
    assert both.source == "mixed" and both.refs == [1, 2]


def test_a_claim_no_passage_supports_is_listed_and_the_answer_is_ungrounded() -> None:
    text = "The Eiffel Tower was finished in 1889 [1]. It was painted gold by astronauts during the moon landing [1]."
    g = Grounder(None).ground(text, PASSAGES)
    assert g.ungrounded and g.unsupported == ["It was painted gold by astronauts during the moon landing."]
    assert g.refs == [1] and g.supported_rate == 0.5
    assert g.text.endswith("during the moon landing.")  # its wrong citation is gone, none put in its place


def test_a_decline_needs_no_citation_and_is_not_ungrounded() -> None:
    g = Grounder(None).ground("The sources do not say.", PASSAGES)
    assert not g.ungrounded and g.refs == [] and g.source == "none"


def test_a_bare_answer_is_sourced_with_the_question_it_answers() -> None:
    g = Grounder(None).ground("1889.", PASSAGES, question="When was the Eiffel Tower finished?")
    assert g.refs == [1] and not g.ungrounded
    bare = Grounder(None).ground("In 1492.", PASSAGES, question="When did Columbus sail?")
    assert bare.ungrounded and bare.refs == []


def test_a_lone_number_is_an_answer_to_source_or_flag() -> None:
    """A "2" has no word of two letters, yet it answers "how many": cited, or flagged, never neither."""
    passages = [*PASSAGES, context_passage(3, "Norman customary law developed two customaries in the Middle Ages.")]
    question = "How many customaries does Norman customary law have?"
    right = Grounder(None).ground("2", passages, question=question)
    assert right.refs == [3] and not right.ungrounded
    wrong = Grounder(None).ground("7", passages, question=question)
    assert wrong.ungrounded and wrong.refs == []


def test_citations_of_passages_not_in_the_context_are_removed_and_the_layout_kept() -> None:
    text = "Steps:\nRun keel ingest again on the same paths [7].\nAlready ingested files are skipped [2]."
    checked = check_citations(text, PASSAGES)
    assert checked.invalid_refs == [7] and "[7]" not in checked.text
    assert checked.text.count("\n") == 2 and [c.ref for c in checked.citations] == [2]


def test_meaning_supports_a_paraphrase_that_shares_few_words(embed: object) -> None:
    text = "Failures get retried: just run keel ingest once more on those folders."
    words_only = Grounder(None).ground(text, PASSAGES)
    assert words_only.ungrounded  # too few of its words are the passage's
    with_meaning = Grounder(embed).ground(text, PASSAGES)  # type: ignore[arg-type]
    assert not with_meaning.ungrounded and with_meaning.refs == [2]
    # ... but a fluent sentence on another topic is not supported by meaning alone
    off = Grounder(embed).ground("Gustave Eiffel also built bridges across Portugal.", PASSAGES)  # type: ignore[arg-type]
    assert off.ungrounded


class _Reader:
    """A verifier's provider: says no to the passages it was told to refuse, or fails."""

    name = "reader"
    model = "reader"
    price_in_per_1k = price_out_per_1k = 0.0

    def __init__(self, refuse: tuple[str, ...] = (), fail: bool = False) -> None:
        self.refuse = refuse
        self.fail = fail
        self.asked: list[str] = []

    def generate(self, req: GenerationRequest, on_token: object = None) -> Generation:
        self.asked.append(req.prompt)
        if self.fail:
            raise ProviderError("timeout")
        said = "no" if any(word in req.prompt.split("Statement:")[0] for word in self.refuse) else "yes"
        return Generation(said, 0, 1, self.model)


TWO_SOURCES = [
    PASSAGES[0],
    context_passage(3, "The Eiffel Tower is 330 metres tall, and it was finished in 1889 in Paris."),
]


def test_the_verifier_has_the_last_word_on_a_citation() -> None:
    claim = "The Eiffel Tower is 330 metres tall."
    reader = _Reader(refuse=("engineering",))  # refuses passage 1, the best by its words
    g = Grounder(None, verifier=Verifier(reader, budget_s=5.0)).ground(claim, TWO_SOURCES)
    assert g.refs == [3] and g.source == "attributed" and not g.ungrounded and not g.unverified
    # It reads passage 1's sentence that holds the claim's words, not the whole passage.
    assert len(reader.asked) == 2 and reader.asked[0].startswith("Passage: It was designed by the engineering")

    everything = _Reader(refuse=("Eiffel",))
    g = Grounder(None, verifier=Verifier(everything, budget_s=5.0)).ground(claim, TWO_SOURCES)
    assert g.refs == [] and g.ungrounded and g.unsupported == [claim]

    # The model's own citation refused: attribution may still find a passage the verifier accepts.
    g = Grounder(None, verifier=Verifier(_Reader(refuse=("engineering",)), budget_s=5.0)).ground(
        "The Eiffel Tower is 330 metres tall [1].", TWO_SOURCES
    )
    assert g.refs == [3] and g.source == "attributed"

    # A bare answer is put to it with the question it answers: "1889" alone states nothing.
    reader = _Reader()
    g = Grounder(None, verifier=Verifier(reader, budget_s=5.0)).ground(
        "1889.", TWO_SOURCES, question="When was the Eiffel Tower finished?"
    )
    assert g.refs and not g.ungrounded
    assert reader.asked[0].split("Statement: ")[1].startswith("When was the Eiffel Tower finished? 1889.")


class _Literal(_Reader):
    """A verifier that says yes when every word of the statement is in what it was shown."""

    def generate(self, req: GenerationRequest, on_token: object = None) -> Generation:
        self.asked.append(req.prompt)
        shown, statement = req.prompt.removeprefix("Passage: ").split("Statement: ")
        statement = statement.split("\n")[0]
        said = "yes" if stems(statement) <= stems(shown) else "no"
        return Generation(said, 0, 1, self.model)


def test_the_verifier_reads_the_one_sentence_that_would_state_the_claim() -> None:
    passage = (
        "Paul Baran developed the concept of distributed adaptive message block switching. "
        "The US Air Force funded the study, and the work rested on three key ideas."
    )
    assert evidence("Baran developed distributed message switching.", passage).startswith("Paul Baran developed")
    assert evidence("Nothing here matches.", passage) == passage  # no sentence shares a word: all of it
    # Every word of the claim is in the passage, but in two sentences and two relations: read
    # whole, it would pass; read where it would have to be said, it does not.
    stitched = "Paul Baran funded the Air Force study."
    assert stems(stitched) <= stems(passage)
    reader = _Literal()
    g = Grounder(None, verifier=Verifier(reader, budget_s=5.0)).ground(stitched, [context_passage(1, passage)])
    assert g.ungrounded and g.unsupported == [stitched]
    assert reader.asked and "Paul Baran developed" not in reader.asked[0]
    said = "The US Air Force funded the study."
    assert (
        not Grounder(None, verifier=Verifier(_Literal(), budget_s=5.0))
        .ground(said, [context_passage(1, passage)])
        .ungrounded
    )


def test_a_citation_the_verifier_could_not_read_stays_and_says_so() -> None:
    claim = "The Eiffel Tower is 330 metres tall."
    g = Grounder(None, verifier=Verifier(_Reader(fail=True), budget_s=5.0)).ground(claim, TWO_SOURCES)
    assert g.refs and not g.ungrounded and g.unverified
    spent = _Reader()
    g = Grounder(None, verifier=Verifier(spent, budget_s=0.0)).ground(claim, TWO_SOURCES)
    assert g.refs and g.unverified and spent.asked == []  # no budget: not asked at all
