"""The extractive answerer: no LLM. It picks the context sentences that answer the question.

It is the last link of every provider chain, so a query always gets a grounded answer offline,
when every LLM is down, or when the budget is spent. Each source sentence is scored by the
question terms it contains, weighted by how rare each term is in the context (a small BM25-like
IDF), plus the passage's retrieval score as a prior; the best few are returned, best first, each with
its [n] citation.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections import Counter
from dataclasses import dataclass

from contracts.query import ContextPassage
from generation.instructions import aimed_at_model
from generation.providers import Generation, GenerationRequest, OnToken
from generation.terms import stem, stems, terms

# A sentence ends at . ! or ? before a capital, digit or quote, at ? or ! before anything, and at
# a line break after end punctuation or a blank line (an FAQ's question is its own line).
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])|(?<=[?!])\s+|(?<=[.!?:])\s*\n\s*|\n\s*\n\s*")
MAX_SENTENCES = 3
DECLINE = "The documents don't say: none of the passages found answers this question."


@dataclass(frozen=True, kw_only=True)
class AnswererConfig:
    """How much to answer with, and when to say the documents don't say (bench.tune_answers)."""

    # Defaults chosen by `bench.tune_answers` on half of the SQuAD part's articles (held-out half:
    # F1 0.070 -> 0.130, contains-gold 0.851 -> 0.844). Coverage and answer-type declines are off:
    # they declined answerable questions as often as unanswerable ones (the answer type, even with
    # spaCy's entity types, 3.4% of answerable and 3.3% of unanswerable questions). The negation and
    # number declines below are on: together, 13.4% of unanswerable and 2.3% of answerable ones.
    max_sentences: int = MAX_SENTENCES
    keep_ratio: float = 0.5  # a sentence after the best is kept only if it scores this share of the best
    min_coverage: float = 0.0  # decline when the best sentence holds less of the question's term weight
    answer_type: bool = False  # when/how many/who questions: only a sentence holding a date, number or name
    phrase_weight: float = 1.0  # a bonus per question word pair the sentence holds in the same order
    # A question that says "not"/"never" is not answered by sentences that never say it: "Which
    # regions do not have snow?" is answered by "X has no snow", not by "Snow fell in Y" (on the
    # SQuAD part: 8.9% of unanswerable questions declined, 0.8% of answerable).
    negation: bool = True
    # A number or year the question states must be in a passage the answer quotes: "What happened
    # in 1973?" is not answered from a passage about 1979 (SQuAD part: 3.6% / 0.6%).
    details: bool = True
    define_weight: float = 1.0  # "What is X?": a sentence that starts by naming X gains this share of the total


_NUMBER = re.compile(
    r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|hundred|thousand|million|billion)\b", re.I
)
_TIME = re.compile(
    r"\d|\b(century|centuries|decade|year|years|month|week|day|days|today|january|february|march|april|may|june|july|"
    r"august|september|october|november|december|monday|tuesday|wednesday|thursday|friday|saturday|sunday|"
    r"spring|summer|autumn|winter|ago|before|after|during|until)\b",
    re.I,
)
_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]+|<PERSON>")

_ASKS_NUMBER = re.compile(r"(how (many|much|long|old|far|big|large|often)|what (percentage|percent|number|amount))\b")
_ASKS_TIME = re.compile(r"(when|what (year|decade|century|date|time|month|day)|in what (year|decade|century))\b")
_ASKS_NAME = re.compile(r"(who|whom|whose)\b")
_NEGATED = re.compile(r"\b(not|never|no|none|nothing|nobody|neither|nor|without|cannot)\b|n't\b", re.I)
# "What is X?", "Who were the X?", "What does X mean?": X is what a defining sentence starts with.
# "What is X?", "Who were the X?", "What does X mean?": the opening words, as plain words (the rest
# is split in Python: no pattern runs over the question's tail).
_DEFINING = (
    ("what", "is"),
    ("what", "are"),
    ("what", "was"),
    ("what", "were"),
    ("who", "is"),
    ("who", "are"),
    ("who", "was"),
    ("who", "were"),
)
DEFINED_WORDS = 5  # a longer "what is …" asks about a detail, not for a definition


def expects(question: str) -> re.Pattern[str] | None:
    """What an answer to the question must hold, when its wording says: a time, a number or a name."""
    q = question.lower().strip()
    if _ASKS_NUMBER.match(q):
        return _NUMBER
    if _ASKS_TIME.match(q):
        return _TIME
    if _ASKS_NAME.match(q):
        return _NAME
    return None


def defined(question: str) -> list[str]:
    """The stems of what a "what is X?" question asks to define, or [] for any other question."""
    text = question.lower().strip()
    if "?" in text.rstrip("?"):
        return []  # more than one question, or a question inside a sentence
    words = text.rstrip("?").split()
    if len(words) > 2 and tuple(words[:2]) in _DEFINING:
        subject = words[2:]
    elif len(words) > 3 and words[:2] == ["what", "does"] and words[-1] == "mean":
        subject = words[2:-1]
    else:
        return []
    stems_ = _stem_sequence(" ".join(subject))
    return stems_ if 0 < len(stems_) <= DEFINED_WORDS else []


_DETAIL = re.compile(r"\d+(?:[.,]\d+)*")


def details(text: str) -> set[str]:
    """The numbers a text states, as written ("1,000", "2019", "3.5")."""
    return set(_DETAIL.findall(text))


def negated(text: str) -> bool:
    return _NEGATED.search(text) is not None


def _stem_sequence(text: str) -> list[str]:
    """The text's content-word stems in order: as a set for word overlap, in adjacent pairs for
    phrases ("Super Bowl", "tax cut" match as phrases, not just as words)."""
    return [stem(t) for t in terms(text)]


def sentences(text: str) -> list[str]:
    return [" ".join(s.split()) for s in _SENTENCE.split(text) if len(s.strip()) > 20]


def pick(
    question: str, passages: list[ContextPassage], k: int = MAX_SENTENCES, config: AnswererConfig | None = None
) -> list[tuple[int, str]]:
    """(ref, sentence) pairs, best first by score, at most k; [] when nothing answers.

    A sentence that is itself a question, or an instruction aimed at the assistant
    (`generation.instructions`), is never an answer, but the sentence right after a
    matching one inherits its score: in FAQs and Q&A pages the answer follows the question and
    often shares none of its words. Each question term weighs by how rare it is among the context's
    sentences (a term no sentence holds weighs most: a question about something the context never
    mentions is not answered by it); `min_coverage` is the share of that weight the best sentence
    must hold.
    """
    config = config or AnswererConfig(max_sentences=k)
    q = stems(question)
    units = [(p, i, s) for p in passages for i, s in enumerate(sentences(p.text))]
    if not q or not units:
        return []
    df: Counter[str] = Counter()
    unit_sequences = [_stem_sequence(s) for _, _, s in units]  # each sentence tokenised once
    unit_stems = [set(seq) for seq in unit_sequences]
    for st in unit_stems:
        df.update(st)
    n = len(units)
    weight = {t: math.log(1 + n / (df[t] + 0.5)) for t in q}
    total = sum(weight.values())
    best_prior = max((p.score for p in passages), default=0.0) or 1.0
    overlap = [sum(weight[t] for t in q & st) for st in unit_stems]
    if config.phrase_weight:
        q_pairs = set(itertools.pairwise(_stem_sequence(question)))
        pair_weight = {(a, b): (weight[a] + weight[b]) / 2 for a, b in q_pairs}
        overlap = [
            o + config.phrase_weight * sum(pair_weight[x] for x in q_pairs & set(itertools.pairwise(seq)))
            for o, seq in zip(overlap, unit_sequences, strict=True)
        ]
    subject = defined(question) if config.define_weight else []
    if subject:  # a sentence that starts by naming the subject defines it: "Keel runs RAG as workflows."
        # Only a sentence that starts as prose does: "keel job JOB_ID lists…" is a command, not a definition.
        overlap = [
            o + config.define_weight * total if seq[: len(subject)] == subject and not unit[2][:1].islower() else o
            for o, seq, unit in zip(overlap, unit_sequences, units, strict=True)
        ]
    scored = []
    for order, (p, i, s) in enumerate(units):
        if s.rstrip().endswith("?") or (p.flagged is not False and aimed_at_model(s)):
            # A question is not an answer; an order to the assistant is never quoted as one
            # (a passage checked at ingest and not flagged holds none).
            continue
        score = overlap[order]
        prev = units[order - 1] if order else None
        if prev is not None and prev[0] is p and prev[1] == i - 1 and prev[2].rstrip().endswith("?"):
            score = max(score, overlap[order - 1])
        if score <= 0:
            continue
        scored.append((score, score + 0.5 * p.score / best_prior, order, p, s))
    if not scored:
        return []
    scored.sort(key=lambda x: (-x[1], x[2]))
    wanted = expects(question) if config.answer_type else None
    if wanted is not None:  # a "when" question is not answered by a sentence with no time in it
        scored = [x for x in scored if wanted.search(x[4])]
        if not scored:
            return []
    top = scored[0][0]
    if top / total < config.min_coverage:
        return []
    kept = [scored[0], *(x for x in scored[1:] if x[0] >= config.keep_ratio * top)][: config.max_sentences]
    if config.negation and negated(question) and not any(negated(x[4]) for x in kept):
        return []  # the question asks about what is not so; no kept sentence says anything is not
    if config.details and (stated := details(question)):
        quoted = details(" ".join(x[3].text for x in kept))
        if not stated <= quoted:
            return []  # the question's number is in no passage the answer comes from
    return [(p.ref, s) for _, _, _, p, s in kept]


def cite(sentence: str, ref: int) -> str:
    """`It is fast [2].`: the citation inside the sentence it supports."""
    s = sentence.rstrip()
    return f"{s[:-1]} [{ref}]{s[-1]}" if s[-1:] in ".!?" else f"{s} [{ref}]"


class ExtractiveAnswerer:
    name = "extractive"
    model = "extractive-v4"
    price_in_per_1k = 0.0
    price_out_per_1k = 0.0

    def __init__(self, config: AnswererConfig | None = None) -> None:
        self.config = config or AnswererConfig()

    def generate(self, req: GenerationRequest, on_token: OnToken | None = None) -> Generation:
        picked = pick(req.question, req.passages, config=self.config)
        limit = max(1, req.max_output_tokens)
        while len(picked) > 1 and sum(len(s.split()) + 1 for _, s in picked) > limit:
            picked = picked[:-1]  # the output limit holds here too: fewer sentences, never a cut one
        text = " ".join(cite(s, ref) for ref, s in picked) if picked else DECLINE
        if req.json_schema is not None:
            text = json.dumps({"answer": text, "sources": sorted({ref for ref, _ in picked})})
        else:
            text = " ".join(text.split(" ")[:limit])
        pieces = text.split(" ")
        if on_token is not None:
            for i, w in enumerate(pieces):
                on_token(w if i == 0 else " " + w)
        return Generation(text, len(req.prompt.split()), len(pieces), self.model)
