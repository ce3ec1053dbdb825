"""`make bench-pii`: PII redaction's recall and precision, and its false positives on real prose.

1. The labelled set (`evaluation.pii_set`): per entity type, recall (gold spans found with the
   right type), precision (detections that are a gold span of that type) and the type confusions;
   detections in the look-alike negatives are false positives.
2. SciFact's abstracts (`--docs` of them): redactions per 1,000 words. Scientific abstracts hold
   no personal data to speak of, so nearly every redaction there is a false positive that makes a
   passage unsearchable.
Last lines: `pii_recall=`, `pii_precision=`, `pii_negative_false_positives=`, `scifact_redactions_per_1k_words=`.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from evaluation.pii_set import Example, build
from guardrails.pii import Redactor, Span
from keel import offline  # noqa: F401
from keel.config import Settings


def overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def score(redactor: Redactor, examples: list[Example]) -> tuple[dict[str, Counter[str]], list[str]]:
    """Per entity: tp (gold found, right type), fn, fp (a detection of that type with no gold);
    and a line per miss and false positive, to read."""
    tally: dict[str, Counter[str]] = {}
    notes: list[str] = []
    for ex in examples:
        found: list[Span] = redactor.find(ex.text)
        for start, end, entity in ex.spans:
            hit = [s for s in found if overlaps((s.start, s.end), (start, end))]
            c = tally.setdefault(entity, Counter())
            if any(s.entity == entity for s in hit):
                c["tp"] += 1
            else:
                c["fn"] += 1
                got = ",".join(s.entity for s in hit) or "nothing"
                notes.append(f"missed {entity} {ex.text[start:end]!r} (found {got})")
        for s in found:
            if not any(s.entity == e and overlaps((s.start, s.end), (a, b)) for a, b, e in ex.spans):
                tally.setdefault(s.entity, Counter())["fp"] += 1
                notes.append(f"false {s.entity} {ex.text[s.start : s.end]!r} in {ex.kind} {ex.text[:60]!r}")
    return tally, notes


def scifact_rate(redactor: Redactor, corpus: Path, docs: int) -> tuple[float, Counter[str], list[str]]:
    words, counts, samples = 0, Counter[str](), list[str]()
    with corpus.open() as f:
        for i, line in enumerate(f):
            if i >= docs:
                break
            row = json.loads(line)
            text = f"{row.get('title', '')}\n{row.get('text', '')}"
            words += len(text.split())
            for s in redactor.find(text):
                counts[s.entity] += 1
                if len(samples) < 15:
                    samples.append(f"{s.entity} {text[s.start : s.end]!r}")
    return 1000 * sum(counts.values()) / max(1, words), counts, samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=Path("../shared/datasets/scifact"))
    parser.add_argument("--docs", type=int, default=500, help="SciFact abstracts for the false-positive rate")
    parser.add_argument("--show", action="store_true", help="print every miss and false positive")
    args = parser.parse_args()

    s = Settings()
    redactor = Redactor(s.pii_entities, s.pii_score_threshold, s.pii_use_ner)
    examples = build()
    tally, notes = score(redactor, examples)
    print(f"labelled set: {len(examples)} texts, {sum(len(e.spans) for e in examples)} entities")
    print(f"{'entity':<14} {'recall':>7} {'precision':>9} {'tp':>4} {'fn':>4} {'fp':>4}")
    total: Counter[str] = Counter()
    for entity in sorted(tally):
        c = tally[entity]
        total.update(c)
        rec = c["tp"] / max(1, c["tp"] + c["fn"])
        prec = c["tp"] / max(1, c["tp"] + c["fp"])
        print(f"{entity:<14} {rec:>7.3f} {prec:>9.3f} {c['tp']:>4} {c['fn']:>4} {c['fp']:>4}")
    negatives = [e for e in examples if e.kind == "negative"]
    neg_fp = sum(len(redactor.find(e.text)) for e in negatives)
    for line in notes if args.show else notes[:20]:
        print("  " + line)
    rate, counts, samples = scifact_rate(redactor, args.dataset / "corpus.jsonl", args.docs)
    print(f"SciFact, first {args.docs} abstracts: {rate:.2f} redactions per 1,000 words {dict(counts)}")
    for line in samples:
        print("  " + line)
    print(f"pii_recall={total['tp'] / max(1, total['tp'] + total['fn']):.3f}")
    print(f"pii_precision={total['tp'] / max(1, total['tp'] + total['fp']):.3f}")
    print(f"pii_negative_false_positives={neg_fp}")
    print(f"scifact_redactions_per_1k_words={rate:.2f}")


if __name__ == "__main__":
    main()
