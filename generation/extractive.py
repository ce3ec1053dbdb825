"""The extractive answerer: no LLM. It picks the context sentences that answer the question.

It is the last link of every provider chain, so a query always gets a grounded answer offline,
when every LLM is down, or when the budget is spent. Each source sentence is scored by the
question terms it contains, weighted by how rare each term is in the context (a small BM25-like
IDF), plus the passage's retrieval score as a prior; the best few are returned, best first, each with
its [n] citation.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter

from contracts.query import ContextPassage
from generation.providers import Generation, GenerationRequest, OnToken
from generation.terms import stems

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")
MAX_SENTENCES = 3


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text.replace("\n", " ")) if len(s.strip()) > 20]


def pick(question: str, passages: list[ContextPassage], k: int = MAX_SENTENCES) -> list[tuple[int, str]]:
    """(ref, sentence) pairs, best first by score, at most k.

    A sentence that is itself a question is never an answer, but the sentence right after a
    matching one inherits its score: in FAQs and Q&A pages the answer follows the question and
    often shares none of its words.
    """
    q = stems(question)
    units = [(p, i, s) for p in passages for i, s in enumerate(sentences(p.text))]
    if not q or not units:
        return []
    df: Counter[str] = Counter()
    for _, _, s in units:
        df.update(stems(s))
    n = len(units)
    best_prior = max((p.score for p in passages), default=0.0) or 1.0
    overlap = [sum(math.log(1 + n / df[t]) for t in q & stems(s)) for _, _, s in units]
    scored = []
    for order, (p, i, s) in enumerate(units):
        if s.rstrip().endswith("?"):
            continue
        score = overlap[order]
        prev = units[order - 1] if order else None
        if prev is not None and prev[0] is p and prev[1] == i - 1 and prev[2].rstrip().endswith("?"):
            score = max(score, overlap[order - 1])
        if score <= 0:
            continue
        scored.append((score + 0.5 * p.score / best_prior, order, p.ref, s))
    scored.sort(key=lambda x: (-x[0], x[1]))
    return [(ref, s) for _, _, ref, s in scored[:k]]


def cite(sentence: str, ref: int) -> str:
    """`It is fast [2].`: the citation inside the sentence it supports."""
    s = sentence.rstrip()
    return f"{s[:-1]} [{ref}]{s[-1]}" if s[-1:] in ".!?" else f"{s} [{ref}]"


class ExtractiveAnswerer:
    name = "extractive"
    model = "extractive-v1"
    price_in_per_1k = 0.0
    price_out_per_1k = 0.0

    def generate(self, req: GenerationRequest, on_token: OnToken | None = None) -> Generation:
        picked = pick(req.question, req.passages)
        limit = max(1, req.max_output_tokens)
        while len(picked) > 1 and sum(len(s.split()) + 1 for _, s in picked) > limit:
            picked = picked[:-1]  # the output limit holds here too: fewer sentences, never a cut one
        if not picked:
            text = "The sources found do not answer this question."
        else:
            text = " ".join(cite(s, ref) for ref, s in picked)
        if req.json_schema is not None:
            text = json.dumps({"answer": text, "sources": sorted({ref for ref, _ in picked})})
        else:
            text = " ".join(text.split(" ")[:limit])
        pieces = text.split(" ")
        if on_token is not None:
            for i, w in enumerate(pieces):
                on_token(w if i == 0 else " " + w)
        return Generation(text, len(req.prompt.split()), len(pieces), self.model)
