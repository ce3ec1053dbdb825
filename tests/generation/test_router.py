"""Which route a question takes, from what retrieval found."""

from __future__ import annotations

from generation.router import CHEAP, CLARIFY, NO_SOURCES, STRONG, RoutingConfig, choose_route

CONFIG = RoutingConfig(clarify_below=0.15, easy_min_confidence=0.6, easy_max_words=16)


def test_nothing_found_is_no_sources_whatever_the_confidence() -> None:
    assert choose_route("What is Keel?", 0.99, 0, CONFIG) == NO_SOURCES


def test_a_weak_match_asks_the_caller_to_clarify() -> None:
    assert choose_route("What is Keel?", 0.1, 5, CONFIG) == CLARIFY


def test_a_short_question_with_a_strong_match_takes_the_cheap_route() -> None:
    assert choose_route("What is Keel?", 0.7, 5, CONFIG) == CHEAP


def test_a_long_or_uncertain_question_takes_the_strong_route() -> None:
    long = " ".join(["word"] * 17) + "?"
    assert choose_route(long, 0.9, 5, CONFIG) == STRONG
    assert choose_route("What is Keel?", 0.5, 5, CONFIG) == STRONG
