"""Content words for lexical matching: lower-case, stop words out, a light suffix stemmer.

Shared by the extractive answerer (which sentence answers) and the citation check (is a cited
sentence supported), so both judge overlap the same way.
"""

from __future__ import annotations

from keel.words import OVERLAP_STOP_WORDS, OVERLAP_TOKEN, fold

STOP_WORDS = OVERLAP_STOP_WORDS  # the name facts and the answerer import


def terms(text: str) -> list[str]:
    return [w for w in OVERLAP_TOKEN.findall(fold(text)) if w not in OVERLAP_STOP_WORDS and len(w) > 1]


def stem(w: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if len(w) > len(suffix) + 3 and w.endswith(suffix):
            return w[: -len(suffix)]
    return w


def stems(text: str) -> set[str]:
    return {stem(t) for t in terms(text)}
