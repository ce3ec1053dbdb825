"""Small closed sets of words that change what a sentence states, whatever else it shares with
another: negations and the number words. The semantic cache compares two questions by them
(`caches.question`) and grounding compares a claim with its passage by them (`generation.facts`).
"""

from __future__ import annotations

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
