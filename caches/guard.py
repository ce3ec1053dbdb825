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
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from caches.question import QuestionFacts
from keel.words import OPPOSITES, SYMMETRIC

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
    if opposite(a, b):
        return "opposite"
    if swapped_roles(a, b):
        return "order"
    return ""


def opposite(a: QuestionFacts, b: QuestionFacts) -> bool:
    """One question says a direction or degree where the other says its opposite ("before"/"after")."""
    count_a, count_b = Counter(a.plain), Counter(b.plain)
    only_a, only_b = count_a - count_b, count_b - count_a  # "most … most" / "least … most" differ too
    return any(OPPOSITES.get(w, frozenset()) & only_b.keys() for w in only_a)


def _occurrences(sequence: tuple[str, ...]) -> dict[tuple[str, int], int]:
    """(word, k) -> where the word's k-th occurrence stands: the k-th "light" of one question is
    matched with the k-th "light" of the other."""
    seen: dict[str, int] = {}
    at: dict[tuple[str, int], int] = {}
    for i, w in enumerate(sequence):
        k = seen.get(w, 0)
        seen[w] = k + 1
        at[(w, k)] = i
    return at


def swapped_roles(a: QuestionFacts, b: QuestionFacts) -> bool:
    """Two content words trade places around a word both questions hold between them.

    "flights from Boston to Denver" / "from Denver to Boston" ("to" between them, both ways),
    "does Apple buy Samsung" / "does Samsung buy Apple" ("buy"). A reordering that moves a word
    without crossing such an anchor keeps the question ("flights to Denver from Boston", "lose
    weight fast" / "fastest way to lose weight"), and so does a swap across a symmetric word
    ("cats and dogs", "how is A different from B" / "how is B different from A").
    """
    pos_a, pos_b = _occurrences(a.sequence), _occurrences(b.sequence)
    shared = pos_a.keys() & pos_b.keys()
    if len(shared) < 3:
        return False
    sym_a = [i for i, w in enumerate(a.plain) if w in SYMMETRIC]
    sym_b = [i for i, w in enumerate(b.plain) if w in SYMMETRIC]
    anchors = [(pos_a[w], pos_b[w]) for w in shared if a.plain[pos_a[w]] not in SYMMETRIC]
    movable = sorted((pos_a[w], pos_b[w]) for w in shared if w[0] in a.content)
    for i, (xa, xb) in enumerate(movable):
        for ya, yb in movable[i + 1 :]:
            if yb > xb:
                continue  # the same order in both
            if any(xa < s < ya for s in sym_a) or any(yb < s < xb for s in sym_b):
                continue
            if any(xa < ca < ya and yb < cb < xb for ca, cb in anchors):
                return True
    return False


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
