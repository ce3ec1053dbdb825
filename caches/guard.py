"""When a cached question may answer a new one: the semantic cache's guard.

Two checks, both must agree. The rules: the same polarity (no negation flip), the same numbers
and dates, every name in either question present in the other, the same kind of answer asked
for. Then a score: a logistic model over the embeddings' cosine and the questions' word overlap,
whose weights and threshold are fitted by `python -m bench.tune_cache` on a development set of
labelled question pairs, with the false-hit rate as the constraint (the threshold is the one at
which at most that share of the non-duplicates of the tuning half pass). They ship in
`caches/guard.json`, with the figures they were chosen on.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from caches.question import QuestionFacts

GUARD_FILE = Path(__file__).with_name("guard.json")
FEATURES = (
    "cosine",
    "cosine_squared",
    "content_jaccard",
    "fewer_unshared",
    "more_unshared",
    "unshared",
    "length_gap",
    "shorter_length",
)


def veto(a: QuestionFacts, b: QuestionFacts) -> str:
    """Why these two questions cannot share an answer, whatever their similarity ("" if none)."""
    if a.negated != b.negated:
        return "negation"
    if a.numbers != b.numbers:
        return "numbers"
    if not a.names <= b.words or not b.names <= a.words:
        return "names"
    if a.kind != b.kind:
        return "kind"
    return ""


def pair_features(a: QuestionFacts, b: QuestionFacts, cosine: float) -> list[float]:
    """The score's inputs, in FEATURES order."""
    shared = len(a.content & b.content)
    union = len(a.content | b.content) or 1
    only_a, only_b = len(a.content - b.content), len(b.content - a.content)
    return [
        cosine,
        cosine * cosine,
        shared / union,
        float(min(only_a, only_b)),
        float(max(only_a, only_b)),
        float(only_a + only_b),
        float(abs(len(a.content) - len(b.content))),
        float(min(len(a.content), len(b.content))),
    ]


@dataclass(frozen=True, kw_only=True)
class Guard:
    weights: tuple[float, ...]
    bias: float
    threshold: float  # on the score (a probability): a hit needs at least this
    min_cosine: float  # cheap pre-filter: candidates below it are never scored

    @staticmethod
    def load(path: Path = GUARD_FILE) -> Guard:
        raw = json.loads(path.read_text())
        if tuple(raw["features"]) != FEATURES:
            raise ValueError(f"{path} was fitted on other features; run python -m bench.tune_cache again")
        return Guard(
            weights=tuple(float(w) for w in raw["weights"]),
            bias=float(raw["bias"]),
            threshold=float(raw["threshold"]),
            min_cosine=float(raw["min_cosine"]),
        )

    def score(self, a: QuestionFacts, b: QuestionFacts, cosine: float) -> float:
        z = self.bias + sum(w * x for w, x in zip(self.weights, pair_features(a, b, cosine), strict=True))
        return 1.0 / (1.0 + math.exp(-z))

    def decide(self, a: QuestionFacts, b: QuestionFacts, cosine: float) -> tuple[bool, str]:
        """(hit, why not): a hit needs the cosine past the pre-filter, no veto, and the score."""
        if cosine < self.min_cosine:
            return False, "similarity"
        if reason := veto(a, b):
            return False, reason
        if self.score(a, b, cosine) < self.threshold:
            return False, "score"
        return True, ""
