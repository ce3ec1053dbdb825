"""Routing: which provider chain answers, or whether to answer at all.

No passages: a "no sources" answer. Low retrieval confidence: a clarifying question instead of a
guess. A short question with high confidence: the cheap route. Everything else: the strong route.
Every chain ends with the extractive answerer (see `generation.chain`).
"""

from __future__ import annotations

from dataclasses import dataclass

NO_SOURCES = "no_sources"
CLARIFY = "clarify"
CHEAP = "cheap"
STRONG = "strong"


@dataclass(frozen=True)
class RoutingConfig:
    clarify_below: float = 0.15  # confidence under which Keel asks instead of guessing
    easy_min_confidence: float = 0.6
    easy_max_words: int = 16


def choose_route(question: str, confidence: float, passages: int, config: RoutingConfig) -> str:
    if passages == 0:
        return NO_SOURCES
    if confidence < config.clarify_below:
        return CLARIFY
    if len(question.split()) <= config.easy_max_words and confidence >= config.easy_min_confidence:
        return CHEAP
    return STRONG


def no_sources_answer() -> str:
    return "No sources: none of the documents you can see match this question, so there is nothing to answer from."


def clarifying_answer(question: str, quote: bool = True) -> str:
    """Asks the caller to narrow the question, quoting it unless it was flagged (a question that
    reads as orders to the model is not repeated back as the answer)."""
    asked = f"answer “{question.strip()[:200]}”" if quote else "answer this question"
    return f"I could not find sources that clearly {asked}. Could you rephrase it, or name the document, product or time period you mean?"
