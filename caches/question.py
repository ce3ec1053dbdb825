"""What a question is, for a cache: its exact key, and the facts two paraphrases must share.

The exact key folds what does not change the question: Unicode forms, case, spacing,
punctuation. The features are what a semantic hit must not get wrong, since an embedding's
similarity does not see them: a negation ("is X safe" / "is X not safe"), numbers and dates
("in 2019" / "in 2020"), a named thing ("free VPN" / "free VPN for Indonesia"), and what kind of
answer is asked for (a quantity, a time, a place, a person, a reason). Words are compared as
Snowball stems, as BM25 compares them.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import Stemmer

from keel.words import CALENDAR, CARDINALS, NEGATIONS

_INVISIBLE = re.compile(r"[\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
_WORDS = re.compile(r"[^\W_]+", re.UNICODE)
_SPACED = re.compile(r"\S+")
_OPENING = "\"'([{<¿¡“‘«"  # before a word: never a dot (".NET")
_CLOSING = "\"')]}>.,;:!?…”’»"
_TOKENS = re.compile(r"[^\W\d_][\w'’.&-]*|\d+", re.UNICODE)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_NEGATION = re.compile(rf"\b({'|'.join(sorted(NEGATIONS))}|\w+n't)\b")
NUMBER_WORDS = frozenset(CARDINALS) | frozenset(
    [
        "hundred",
        "thousand",
        "million",
        "billion",
        "trillion",
        "first",
        "second",
        "third",
        "fourth",
        "fifth",
        "half",
        "quarter",
        "dozen",
    ]
)
MONTHS = CALENDAR | frozenset(["yesterday", "today", "tomorrow"])
# Words that carry no content of their own here: function words, and the ones every question
# style adds ("best way", "really", "good").
FILLER = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "if",
        "of",
        "at",
        "by",
        "for",
        "with",
        "about",
        "against",
        "between",
        "into",
        "through",
        "during",
        "before",
        "after",
        "above",
        "below",
        "to",
        "from",
        "up",
        "down",
        "in",
        "out",
        "on",
        "off",
        "over",
        "under",
        "again",
        "further",
        "then",
        "once",
        "here",
        "there",
        "when",
        "where",
        "why",
        "how",
        "all",
        "any",
        "both",
        "each",
        "few",
        "more",
        "most",
        "other",
        "some",
        "such",
        "no",
        "nor",
        "not",
        "only",
        "own",
        "same",
        "so",
        "than",
        "too",
        "very",
        "s",
        "t",
        "can",
        "will",
        "just",
        "don",
        "should",
        "now",
        "i",
        "me",
        "my",
        "myself",
        "we",
        "our",
        "ours",
        "ourselves",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "he",
        "him",
        "his",
        "himself",
        "she",
        "her",
        "hers",
        "herself",
        "it",
        "its",
        "itself",
        "they",
        "them",
        "their",
        "theirs",
        "themselves",
        "what",
        "which",
        "who",
        "whom",
        "this",
        "that",
        "these",
        "those",
        "am",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "have",
        "has",
        "had",
        "having",
        "do",
        "does",
        "did",
        "doing",
        "would",
        "could",
        "ought",
        "get",
        "best",
        "good",
        "way",
        "one",
        "ever",
        "really",
    ]
)
# Word order is compared over this many words: a question's roles are in its first sentence, and
# the comparison is quadratic in the words two questions share.
SEQUENCE_WORDS = 48
# The kind of answer asked for, coarse on purpose: "how do I" and "what is the way to" ask alike.
_KINDS = (
    (re.compile(r"\bhow (many|much)\b"), "quantity"),
    (re.compile(r"\bwhen\b|\bwhat (year|time|date|day)\b"), "time"),
    (re.compile(r"\bwhere\b"), "place"),
    (re.compile(r"\bwho(m|se)?\b"), "person"),
    (re.compile(r"\bwhy\b"), "reason"),
)


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


def _fold(text: str) -> str:
    return _INVISIBLE.sub("", unicodedata.normalize("NFKC", text)).casefold().replace("’", "'")


def exact_key(question: str) -> str:
    """The question as the exact cache keys it: folded, single-spaced, each word without the
    punctuation around it. Symbols inside or after a word stay: "C++", "C#" and ".NET" are not
    "C" and "NET" (with words only, "Is C++ supported?" and "Is C supported?" shared an answer)."""
    words = (w.lstrip(_OPENING).rstrip(_CLOSING) for w in _SPACED.findall(_fold(question)))
    return " ".join(w for w in words if w)


@dataclass(frozen=True)
class QuestionFacts:
    negated: bool  # an odd number of negations
    numbers: tuple[str, ...]  # digits and number, month and day words, sorted
    names: frozenset[str]  # stems of capitalised words past the first and of acronyms
    words: frozenset[str]  # stems of every word
    content: frozenset[str]  # stems of the words that carry content
    kind: str  # quantity, time, place, person, reason, or open
    # The first SEQUENCE_WORDS words' stems in order, and their folded forms: who does what to whom
    # is in the order ("Apple buys Samsung" / "Samsung buys Apple" hold the same words).
    sequence: tuple[str, ...] = ()
    plain: tuple[str, ...] = ()


def facts(question: str) -> QuestionFacts:
    text = unicodedata.normalize("NFKC", _INVISIBLE.sub("", question))
    low = _fold(text)
    stem = _stemmer().stemWord
    plain = _WORDS.findall(low)
    numbers = sorted([*_NUMBER.findall(low), *(w for w in plain if w in NUMBER_WORDS or w in MONTHS)])
    names: set[str] = set()
    for i, token in enumerate(_TOKENS.findall(text)):
        word = token.strip("'’.&-")
        if not word or word.isdigit():
            continue
        capitalised = i > 0 and word[0].isupper() and word.casefold() not in FILLER
        if capitalised or (len(word) >= 2 and word.isupper()):
            names.update(stem(w) for w in _WORDS.findall(word.casefold()))
    kind = next((name for pattern, name in _KINDS if pattern.search(low)), "open")
    return QuestionFacts(
        negated=len(_NEGATION.findall(low)) % 2 == 1,
        numbers=tuple(numbers),
        names=frozenset(names),
        words=frozenset(stem(w) for w in plain),
        content=frozenset(stem(w) for w in plain if w not in FILLER and len(w) > 1),
        kind=kind,
        sequence=tuple(stem(w) for w in plain[:SEQUENCE_WORDS]),
        plain=tuple(plain[:SEQUENCE_WORDS]),
    )
