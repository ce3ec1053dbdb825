"""The semantic cache's guard: paraphrases pass, near misses an embedding cannot tell apart do not."""

from __future__ import annotations

import pytest

from caches.guard import Guard, veto
from caches.question import exact_key, facts
from encoders.registry import Encoders
from index.active import DEFAULT_ENCODER, encoder_catalog
from keel.config import Settings


@pytest.fixture(scope="module")
def cosine() -> object:
    encoder = Encoders(threads=1, batch_size=8).get(encoder_catalog(Settings())[DEFAULT_ENCODER])

    def between(a: str, b: str) -> float:
        va, vb = encoder.embed([a, b], interactive=True)
        return float(va @ vb)

    return between


def test_the_exact_key_folds_what_does_not_change_the_question() -> None:
    assert exact_key("  What’s the   SLA?? ") == exact_key("what's the sla") == "what's the sla"
    assert exact_key("(Is the SLA) ok?") == "is the sla ok"
    # Symbols that are part of a name are kept: these are different questions.
    assert len({exact_key(q) for q in ("Is C++ supported?", "Is C supported?", "Is C# supported?")}) == 3
    assert exact_key("Does .NET work?") != exact_key("Does NET work?")
    assert exact_key("Ｈｏｗ do I\u200b reset it?") == "how do i reset it"
    assert exact_key("Is it safe?") != exact_key("Is it not safe?")


@pytest.mark.parametrize(
    ("a", "b", "reason"),
    [
        ("Is ibuprofen safe during pregnancy?", "Is ibuprofen not safe during pregnancy?", "negation"),
        ("Why can I log in?", "Why can't I log in?", "negation"),
        ("What were the sales in 2019?", "What were the sales in 2020?", "numbers"),
        ("What is the best free VPN?", "What is the best free VPN for Indonesia?", "names"),
        (
            "What kind of conversations only happen in Seattle?",
            "What kind of conversations only happen in Australia?",
            "names",
        ),
        ("How many people work at Acme?", "Why do people work at Acme?", "kind"),
    ],
)
def test_near_misses_are_vetoed_by_rule(a: str, b: str, reason: str) -> None:
    assert veto(facts(a), facts(b)) == reason
    hit, why = Guard.load().decide(facts(a), facts(b), 0.99)  # however similar the embeddings say they are
    assert not hit and why == reason


def test_paraphrases_pass_and_loose_neighbours_do_not(cosine: object) -> None:
    guard = Guard.load()
    same = ("How do I reset my password?", "How can I reset my password?")
    assert guard.decide(facts(same[0]), facts(same[1]), cosine(*same)) == (True, "")  # type: ignore[operator]
    loose = ("How do I reset my password?", "How do I change my username?")
    hit, why = guard.decide(facts(loose[0]), facts(loose[1]), cosine(*loose))  # type: ignore[operator]
    assert not hit and why in ("similarity", "score")


def test_the_shipped_guard_was_fitted_under_the_false_hit_constraint() -> None:
    import json

    from caches.guard import GUARD_FILE

    fitted = json.loads(GUARD_FILE.read_text())["fitted_on"]
    assert fitted["held_out"]["false_hit_rate"] <= 0.01 and fitted["tuning"]["false_hit_rate"] <= 0.01
    assert 0.5 <= Guard.load().min_cosine < 1.0


@pytest.mark.parametrize(
    ("a", "b", "reason"),
    [
        ("Flights from Boston to Denver?", "Flights from Denver to Boston?", "order"),
        ("What if Apple buys Samsung?", "What if Samsung buys Apple?", "order"),
        ("How do I convert MP4 to AVI?", "How do I convert AVI to MP4?", "order"),
        ("Is Python faster than Java?", "Is Java faster than Python?", "order"),
        ("What can I do in the US but not in India?", "What can I do in India but not in the US?", "order"),
        ("If light has no mass, how can light bend?", "If bend has no mass, how can light light?", "order"),
        ("What should I do before an interview?", "What should I do after an interview?", "opposite"),
        ("Which phone has the longest battery life?", "Which phone has the shortest battery life?", "opposite"),
        ("How do I move to Canada?", "How do I move from Canada?", "opposite"),
        ("What are the most popular TV shows?", "What are the least popular TV shows?", "opposite"),
    ],
)
def test_swapped_roles_and_opposite_directions_are_vetoed(a: str, b: str, reason: str) -> None:
    assert veto(facts(a), facts(b)) == reason
    assert veto(facts(b), facts(a)) == reason


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Flights from Boston to Denver?", "Flights to Denver from Boston?"),  # the same roles, reordered
        ("How can I lose weight fast?", "What is the fastest way to lose weight?"),
        ("What is the difference between Java and Python?", "What is the difference between Python and Java?"),
        ("How is a virus different from a bacterium?", "How is a bacterium different from a virus?"),
        ("Are cats and dogs good pets?", "Are dogs and cats good pets?"),
        ("What is the best book to learn Python?", "Which Python book is the best to learn from?"),
    ],
)
def test_reorderings_that_keep_the_roles_are_not_vetoed_for_their_order(a: str, b: str) -> None:
    assert veto(facts(a), facts(b)) not in ("order", "opposite")


def test_the_shipped_guard_was_checked_on_near_misses() -> None:
    import json

    from caches.guard import GUARD_FILE

    near = json.loads(GUARD_FILE.read_text())["fitted_on"]["near_misses"]
    assert near is not None and near["false_hit_rate"] <= 0.01
