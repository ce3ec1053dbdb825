"""Text normalisation, in one place: what a word is, which words carry no content, and the small
closed sets of words that change what a sentence states.

BM25 (`encoders.sparse`), near-duplicate checks (`encoders.text`), the caches (`caches.question`),
the guardrails (`guardrails.normalize`) and lexical overlap in generation (`generation.terms`,
`generation.facts`) read text through these. Where two of them split words differently, the
reason is written beside the pattern; a change to BM25's analysis means re-indexing
(`encoders.sparse.SPARSE_VERSION`).
"""

from __future__ import annotations

import re

# A word: letters, digits and underscores in a row (shingles, guardrail folding, prompt-leak runs).
WORD = re.compile(r"\w+", re.UNICODE)
# BM25's token: two or more word characters, as Lucene's and bm25s' analysers split (parity).
BM25_TOKEN = re.compile(r"(?u)\b\w\w+\b")
# Lexical overlap's token, over lower-cased text: ASCII letters and digits only, so "don't" is
# "don" and "t" and an underscore splits, as the extractive answerer was tuned.
OVERLAP_TOKEN = re.compile(r"[a-z0-9]+")

# Lucene's classic English stop set (EnglishAnalyzer's ENGLISH_STOP_WORDS_SET), as bm25s uses it:
# BM25 leaves these out.
STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "if",
        "in",
        "into",
        "is",
        "it",
        "no",
        "not",
        "of",
        "on",
        "or",
        "such",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "will",
        "with",
    ]
)
# Lexical overlap (which sentence answers, is a claim supported) keeps Lucene's words that change a
# sentence's sense or point at its subject ("but", "if", "then", "they"), and leaves out question
# words, auxiliaries and the reader's pronouns too.
OVERLAP_STOP_WORDS = (STOP_WORDS - set(["but", "if", "into", "such", "their", "then", "there", "these", "they"])) | set(
    [
        "can",
        "do",
        "does",
        "from",
        "has",
        "have",
        "how",
        "i",
        "its",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "you",
        "your",
    ]
)


def fold(text: str) -> str:
    """Text as the word patterns above compare it: lower-cased."""
    return text.lower()


def words(text: str) -> list[str]:
    """Lower-case words, punctuation and spacing dropped."""
    return WORD.findall(fold(text))


NEGATIONS = frozenset(["not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "without", "cannot"])

_TO_TWENTY = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty"
)
_TENS = "thirty forty fifty sixty seventy eighty ninety"
# Number words that stand for one number, with its digits: "four" is "4".
CARDINALS: dict[str, str] = {w: str(n) for n, w in enumerate(_TO_TWENTY.split())} | {
    w: str(10 * n) for n, w in enumerate(_TENS.split(), start=3)
}


# The calendar's names: capitalised in English without naming what a text is about, and, in a
# question, a detail that changes what it asks (the caches compare them; `caches.question`).
CALENDAR = frozenset(
    "january february march april may june july august september october november december"  # noqa: SIM905
    " monday tuesday wednesday thursday friday saturday sunday".split()
)


# Words that make a relation read the same both ways: "cats and dogs", "the difference between
# A and B", "is A similar to B". Two words with one of these between them may trade places.
SYMMETRIC = frozenset(
    "and or nor & vs versus plus between among differ different difference differences similar similarity same"  # noqa: SIM905
    " alike equal equivalent compare compared comparison related relation relationship relationships".split()
)

# Opposite directions, amounts and orders: a question with one of them does not ask what a question
# with its opposite asks ("before the interview" / "after the interview"). Function words and
# comparison words only: an open list of antonymous adjectives would never be complete.
_OPPOSITE_PAIRS = (
    ("before", "after"),
    ("from", "to"),
    ("more", "less"),
    ("more", "fewer"),
    ("most", "least"),
    ("best", "worst"),
    ("better", "worse"),
    ("above", "below"),
    ("over", "under"),
    ("up", "down"),
    ("in", "out"),
    ("into", "out"),
    ("on", "off"),
    ("higher", "lower"),
    ("highest", "lowest"),
    ("longer", "shorter"),
    ("longest", "shortest"),
    ("larger", "smaller"),
    ("largest", "smallest"),
    ("bigger", "smaller"),
    ("biggest", "smallest"),
    ("increase", "decrease"),
    ("maximum", "minimum"),
    ("max", "min"),
    ("first", "last"),
    ("start", "end"),
    ("buy", "sell"),
    ("import", "export"),
    ("win", "lose"),
    ("pros", "cons"),
    ("advantages", "disadvantages"),
)
OPPOSITES: dict[str, frozenset[str]] = {}
for _a, _b in _OPPOSITE_PAIRS:
    OPPOSITES[_a] = OPPOSITES.get(_a, frozenset()) | {_b}
    OPPOSITES[_b] = OPPOSITES.get(_b, frozenset()) | {_a}
