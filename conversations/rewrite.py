"""A follow-up made standalone before retrieval: "And who approved it?" alone finds nothing.

Two texts come out of a rewrite, because they do different jobs:

- `question`, the standalone question: what the answerer reads and the answer records. The
  deterministic rewrite keeps the asker's words and names what they refer to, "Did they hold a
  wake for him? (about Jan Berry, Jan and Dean)", when the follow-up leans on the conversation
  (a pronoun, or no name of its own). An LLM rewrite (`generation.followup`) replaces it.
- `search`, what retrieval looks for: the standalone question, then the conversation's earlier
  questions (newest first) and its last two answers that said something, cut to a word budget.
  A follow-up is about what the asker just read; the last answers carry its entities and the
  words of the passages they came from, and the earlier questions carry the topic. Measured on
  CANARD/QuAC development conversations (`keel eval --conversations`), the answers are most of
  the gain; the earlier questions alone close under half of the gap to a human rewrite.

No model is needed, and the rewrite is a pure function of the turns, so a workflow may run it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from keel.words import CALENDAR, OVERLAP_STOP_WORDS, STOP_WORDS

SEARCH_WORDS = 160  # the search text's budget: a short passage's worth, well inside the encoder's window
ANSWERS_CARRIED = 2  # the last answers that said something
SUBJECTS_NAMED = 2  # names added to a follow-up that leans on the conversation

# A token: a word with its inner apostrophes, ampersands, dots and hyphens ("O'Neil", "U.S.",
# "AT&T"), or one sign. Each alternative is a single character class repeated, so it runs in
# linear time; names are joined from tokens in code, not by a pattern.
# An answer's citation markers, "[2]": words of no passage.
_MARKER = re.compile(r"\[\d{1,4}\]")
_TOKEN = re.compile(r"[\w'&.\-]+|[^\w\s]")
_SENTENCE_ENDS = frozenset([".", "?", "!", ":", ";"])
# Words that join the capitalised words of one name: "Bank of England", "Jan and Dean".
_JOINERS = frozenset(["of", "the", "and", "&", "de", "da", "del", "der", "van", "von", "la", "le", "du", "al"])
# Referring words: a follow-up that holds one leans on what came before.
_REFERRING = frozenset(
    "he him his she her hers they them their theirs it its this that these those there then else other another"  # noqa: SIM905
    " same former latter".split()
)
# Capitalised only because a sentence starts with them, or never a name.
_NOT_NAMES = (
    STOP_WORDS
    | OVERLAP_STOP_WORDS
    | _REFERRING
    | CALENDAR
    | frozenset(
        "i did does was were is are has had can could would should will what who whom whose when where why how"  # noqa: SIM905
        " which any anything also yes no ok okay so and after before during later in on at".split()
    )
)


@dataclass(frozen=True, kw_only=True)
class Exchange:
    """An earlier turn as the rewrite reads it."""

    question: str
    answer: str
    answered: bool = True  # False: the answer said it could not answer (it carries no context)


@dataclass(frozen=True, kw_only=True)
class Rewrite:
    question: str  # standalone: what the answerer reads and the answer records
    search: str  # what retrieval looks for
    method: str  # "none" (nothing to lean on), "context" (this module's), "llm"


def rewrite(
    question: str, history: Sequence[Exchange], *, topic: str = "", budget_words: int = SEARCH_WORDS
) -> Rewrite:
    """The follow-up `question`, after the earlier turns `history` (oldest first), in a
    conversation about `topic` (its title, when the client gave it one: what the asker knows the
    conversation is about, which even its first question may lean on)."""
    question, topic = question.strip(), topic.strip()
    if not history and not topic:
        return Rewrite(question=question, search=question, method="none")
    standalone = _name_subjects(question, history, topic)
    search = search_text(standalone, history, budget_words, topic=topic)
    return Rewrite(question=standalone, search=search, method="context")


def search_text(
    standalone: str, history: Sequence[Exchange], budget_words: int = SEARCH_WORDS, *, topic: str = ""
) -> str:
    """The standalone question, the conversation's topic, then the last answers that said
    something and the earlier questions, newest first, until the word budget is spent."""
    parts = [standalone]
    if topic and topic.lower() not in standalone.lower():
        parts.append(topic)
    left = budget_words - sum(len(p.split()) for p in parts)
    answers = [_MARKER.sub("", h.answer) for h in reversed(history) if h.answered and h.answer.strip()]
    answers = answers[:ANSWERS_CARRIED]
    for text in [*answers, *(h.question for h in reversed(history))]:
        words = text.split()
        if left <= 0:
            break
        parts.append(" ".join(words[:left]))
        left -= len(words)
    return "\n".join(parts)


def subjects(history: Sequence[Exchange]) -> list[str]:
    """The names the conversation is about, most mentioned first (the latest mention breaks ties)."""
    counts: Counter[str] = Counter()
    latest: dict[str, int] = {}
    unconfirmed: set[str] = set()  # seen only at a sentence's start, so far
    for turn_no, turn in enumerate(history):
        texts = [turn.question, turn.answer] if turn.answered else [turn.question]
        for text in texts:
            for name, initial in _runs(text):
                if initial and name not in counts:
                    unconfirmed.add(name)
                elif not initial:
                    unconfirmed.discard(name)
                counts[name] += 1
                latest[name] = turn_no
    for name in unconfirmed:
        del counts[name], latest[name]
    # A short form counts as the longest name it is part of: "Berry" is "Jan Berry".
    for short in sorted(counts, key=len):
        longer = [n for n in counts if n != short and _part_of(short, n)]
        if longer:
            full = max(longer, key=lambda n: (counts[n], len(n)))
            counts[full] += counts.pop(short)
            latest[full] = max(latest[full], latest.pop(short))
    return sorted(counts, key=lambda n: (-counts[n], -latest[n], n))


def _part_of(short: str, name: str) -> bool:
    words, within = short.split(), name.split()
    return any(within[i : i + len(words)] == words for i in range(len(within) - len(words) + 1))


def names(text: str) -> list[str]:
    """Runs of capitalised words, joined by "of", "and" and the like: "Jan and Dean", "Berry". A
    lone capitalised word that starts a sentence is left out: "Ask", "Hello" are not names."""
    return [name for name, initial in _runs(text) if not initial]


def _runs(text: str) -> list[tuple[str, bool]]:
    """Every run of capitalised words, and whether it is one word that starts a sentence (a name
    only if the conversation also writes it mid-sentence)."""
    found: list[tuple[str, bool]] = []
    run: list[str] = []
    pending: list[str] = []  # joiners seen after a run, kept only if another capital follows
    start = True  # at a sentence's start, a capital may only be grammar
    initial = False  # the run began a sentence
    for token in _TOKEN.findall(text):
        word = token.removesuffix("'s").strip(".'")  # "Berry's" names Berry
        if word and word[0].isupper() and (run or word.lower() not in _NOT_NAMES):
            initial = initial if run else start
            run += [*pending, word]
            pending = []
        elif run and token.lower() in _JOINERS and not pending:
            pending = [token]
        else:
            _close(run, initial, found)
            run, pending = [], []
        start = token in _SENTENCE_ENDS or token.endswith(".")
        if start or token == ",":  # a name does not run on past a sentence or a comma
            _close(run, initial, found)
            run, pending = [], []
    _close(run, initial, found)
    return found


def _close(run: list[str], initial: bool, found: list[tuple[str, bool]]) -> None:
    if run:
        found.append((" ".join(run), initial and len(run) == 1))


def _name_subjects(question: str, history: Sequence[Exchange], topic: str) -> str:
    """The follow-up with the conversation's subjects named after it, when it leans on them."""
    lowered = {t.lower() for t in _TOKEN.findall(question)}
    if names(question) and not lowered & _REFERRING:
        return question  # it names its own subject
    missing = [n for n in subjects(history) if n.lower() not in question.lower()][:SUBJECTS_NAMED]
    if not missing and topic:
        missing = [topic]
    return f"{question} (about {', '.join(missing)})" if missing else question
