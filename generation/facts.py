"""The specific facts a claim states, which a passage must hold before it can support the claim.

Word overlap and embedding similarity cannot tell "Stage 3 is the final stage" from "Stage 4 is
the final stage", nor "is administered by formal or informal means" from "is never administered
by ...": the words are the same but one. Small models make exactly these slips, most of all when
a question carries a false premise (SQuAD 2.0's unanswerable questions swap a name, a number or
add a negation) and the model repeats it. So before a passage may support a claim, the claim's
specific facts must each be in it:

- numbers (digits; "5 pm" keeps its am/pm; the passage may write small numbers as words),
- negations ("never", "not", "no", ...),
- quotations: a quoted run of words must be the passage's, in that order,
- names: runs of capitalised words, matched as a run ("Solicitor Official of Scotland" is not
  "Solicitor General for Scotland", though every word is in the passage). The capital of a
  sentence's first word is grammar, not a name, unless the question uses the same word: an
  answer that opens with the question's own name for a thing asserts the question's premise.

Everything is compared on stems, case-insensitively, so "Normans" matches "Norman" and
"16th" matches "16th century".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from generation.terms import STOP_WORDS, stem
from keel.words import CARDINALS, NEGATIONS

_TOKEN = re.compile(r"\d+(?:[.,:]\d+)*(?:\s?(?:[ap]\.?m\b\.?))?|[^\W\d_][\w'’-]*")
_TIME = re.compile(r"(?i)^(\d+)(?:[.:]\d+)?\s?([ap])\.?m\.?$")
_NUMBER = re.compile(r"\d+")
_CAPITALISED = r"\b[A-ZÀ-ÖØ-Þ][\w'’-]*"
# Small joining words inside a name: "Battle of Hastings", "Charles de Gaulle".
_NAME_JOINERS = frozenset(["of", "de", "du", "da", "del", "der", "van", "von", "la", "le", "for", "al", "bin"])
_NAME = re.compile(rf"{_CAPITALISED}(?:\s+(?:(?:{'|'.join(sorted(_NAME_JOINERS))})\s+)?{_CAPITALISED})*")
_QUOTE = re.compile(r'"([^"]{3,300})"|“([^”]{3,300})”')
_LETTERS = re.compile(r"[^\W\d_]+")
_NON_LETTERS = re.compile(r"[\W_]+")
_POSSESSIVE = re.compile(r"(?<=\w)['’]s?$")
# Words that open a sentence or clause with a capital and are never names.
_OPENERS = frozenset(
    [
        "if",
        "besides",
        "although",
        "though",
        "after",
        "before",
        "during",
        "while",
        "since",
        "because",
        "however",
        "also",
        "then",
        "there",
        "these",
        "those",
        "they",
        "he",
        "she",
        "we",
        "his",
        "her",
        "their",
        "our",
        "many",
        "some",
        "most",
        "each",
        "every",
        "all",
        "both",
        "other",
        "another",
        "such",
        "name",
        "list",
        "yes",
        "according",
        "despite",
        "unlike",
        "like",
        "following",
    ]
)


@dataclass(frozen=True)
class Source:
    """What a passage offers the fact check, worked out once per passage."""

    numbers: frozenset[str]
    times: frozenset[str]
    negations: frozenset[str]
    initials: frozenset[str]  # of its names: "SP" stands for "Scottish Parliament"
    text: str  # its words' stems, space-separated, with a space at each end: runs match as substrings


def source(text: str) -> Source:
    tokens = _TOKEN.findall(text)
    numbers: set[str] = set()
    times: set[str] = set()
    for t in tokens:
        if m := _TIME.match(t):
            times.add(m.group(1) + m.group(2).lower())
        numbers.update(_NUMBER.findall(t.replace(",", "")))
        for part in t.lower().split("-"):  # "four-to-one"
            if part in CARDINALS:
                numbers.add(CARDINALS[part])
    return Source(
        numbers=frozenset(numbers),
        times=frozenset(times),
        negations=frozenset(n for t in tokens if (n := _negation(t))),
        initials=frozenset(_initials(name, joiners) for name in _runs(text) for joiners in (False, True)),
        text=_run(tokens),
    )


@dataclass(frozen=True)
class Claimed:
    """The facts a claim states, worked out once and checked against each passage."""

    times: tuple[tuple[str, str], ...]  # (as written, "5p")
    numbers: tuple[str, ...]
    negations: tuple[tuple[str, str], ...]  # (as written, the negation it is)
    quotes: tuple[tuple[str, str], ...]  # (as written, its words' stems as a run)
    names: tuple[tuple[str, str], ...]  # (as written, its stems as a run)

    def missing_from(self, passage: Source) -> list[str]:
        """The facts the passage does not hold (empty: nothing stands in the way of support)."""
        out = [written for written, time in self.times if time not in passage.times]
        out += [n for n in self.numbers if n not in passage.numbers]
        # "never" is a claim of its own ("is never administered"); the other negations only need
        # the passage to deny something too: a cheap check, not a parse.
        out += [
            written
            for written, negation in self.negations
            if (negation not in passage.negations if negation == "never" else not passage.negations)
        ]
        out += [f'"{written}"' for written, run in self.quotes if run not in passage.text]
        out += [name for name, run in self.names if run not in passage.text and name not in passage.initials]
        return out


def claimed(claim: str, question: str = "") -> Claimed:
    tokens = _TOKEN.findall(claim)
    times, numbers, negations = [], [], []
    for t in tokens:
        if m := _TIME.match(t):
            times.append((t, m.group(1) + m.group(2).lower()))
        else:
            numbers.extend(_NUMBER.findall(t.replace(",", "")))
        if negation := _negation(t):
            negations.append((t, negation))
    quotes = []
    for m in _QUOTE.finditer(claim):  # a quotation's words are the passage's own, in order
        quoted = m.group(1) or m.group(2)
        words = _TOKEN.findall(quoted)
        if len(words) >= 2:
            quotes.append((quoted, _run(words)))
    asked = {stem(w) for w in _LETTERS.findall(question.lower())}
    return Claimed(
        times=tuple(times),
        numbers=tuple(numbers),
        negations=tuple(negations),
        quotes=tuple(quotes),
        names=tuple((name, _run([name])) for name in names(claim, asked)),
    )


def names(claim: str, asked: set[str]) -> list[str]:
    """Runs of capitalised words (small joining words allowed inside; a comma or slash ends a
    run), leading stop words off. A run made of the sentence's first word alone is a name only
    when the question uses the word (see the module's note)."""
    out = []
    for name, first in _runs(claim):
        if not (first and " " not in name and stem(name.lower()) not in asked):
            out.append(name)
    return out


def _runs(text: str) -> list[tuple[str, bool]]:
    """(name, whether it opens the text) for each run of capitalised words."""
    out = []
    for m in _NAME.finditer(text):
        words = [_POSSESSIVE.sub("", w) for w in m.group(0).split()]
        start = m.start()
        while words and (words[0].lower() in STOP_WORDS or words[0].lower() in _OPENERS):
            start += len(words[0])
            words = words[1:]
        if words:
            out.append((" ".join(words), not text[:start].strip()))
    return out


def _initials(run: tuple[str, bool], joiners: bool) -> str:
    return "".join(w[0].upper() for w in run[0].split() if joiners or w not in _NAME_JOINERS)


def _run(tokens: list[str]) -> str:
    """Stems as a run to find in `Source.text`: a space at each end, so words match whole."""
    return f" {' '.join(_stems(tokens))} "


def _stems(tokens: list[str]) -> list[str]:
    return [stem(p) for t in tokens for p in _NON_LETTERS.split(_POSSESSIVE.sub("", t.lower())) if p]


def _negation(token: str) -> str:
    """The negation a token is ("n't" for any contraction), or ""."""
    low = token.lower().replace("’", "'")
    if low in NEGATIONS:
        return low
    return "n't" if low.endswith("n't") else ""
