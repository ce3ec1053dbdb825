"""Fit the injection detector's weights and the moderation thresholds on labelled texts; report
both on texts they did not see.

    python -m bench.tune_guard [--dataset FILE.jsonl] [--moderation FILE.jsonl] [--target 0.03] [--write]

FILE.jsonl holds {"text", "label": 1 attack | 0 benign} (default: the development set). Texts are
split in two by a hash of their text: on the tuning half, every weighting of the rule families
(`guardrails.injection`: each family alone flags, needs a second one, or is left out) is tried,
and the one that flags the most attacks while at most `--target` of the benign texts are flagged
is kept (under the issue's 0.05, leaving room for the difference between halves; ties go to
fewer false positives, then to the prior that each family flags on its own). The other half is held out: its true- and
false-positive rates are what the detector does on texts it never saw. `--write` saves the
weights and figures to guardrails/injection.json.

Moderation (`--moderation`, {"text", "label": 1 unsafe | 0}): split the same way; on the tuning
half each category's threshold is lowered in turn, greedily, where it flags the most unsafe texts
for the fewest safe ones, while at most `--moderation-target` of the safe texts are flagged
(0.04: under-blocking is the cheaper mistake for a question-answering product); saved to
guardrails/moderation.json. Last lines: `injection_tpr=`, `injection_fpr=`, `moderation_tpr=`,
`moderation_fpr=` (held out).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import sys
from pathlib import Path
from typing import Any

from guardrails import moderation
from guardrails.injection import FAMILIES, FITTED, families_of, sentences
from guardrails.normalize import decoded, normalize

DEFAULT_DATASET = Path("../shared/datasets/prompt_injection_dev/prompts.jsonl")
DEFAULT_MODERATION = Path("../shared/datasets/moderation_dev/texts.jsonl")
STEPS = [round(0.05 * i, 2) for i in range(1, 20)]  # thresholds tried, 0.05 .. 0.95
SEVERE_PRIOR = 0.8
LEVELS = (0.0, 0.5, 1.0)  # left out, needs a second family, flags alone (threshold 1.0)


def load(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        sys.exit(f"no texts at {path}: pass a JSONL file of labelled texts")
    with path.open() as f:
        return [json.loads(line) for line in f if line.strip()]


def tuning(text: str) -> bool:
    return hashlib.sha256(text.encode()).digest()[0] % 2 == 0


def sentence_families(text: str) -> list[frozenset[str]]:
    readings = [text, *decoded(normalize(text))]
    return [frozenset(families_of(s)) for reading in readings for s in sentences(reading)]


def flagged(found: list[frozenset[str]], weights: dict[str, float]) -> bool:
    return any(sum(weights[f] for f in fams) >= 1.0 for fams in found)


def rates(rows: list[tuple[list[frozenset[str]], int]], weights: dict[str, float]) -> tuple[float, float]:
    attacks = [f for f, label in rows if label == 1]
    benign = [f for f, label in rows if label == 0]
    tpr = sum(flagged(f, weights) for f in attacks) / max(1, len(attacks))
    fpr = sum(flagged(f, weights) for f in benign) / max(1, len(benign))
    return tpr, fpr


def fit_moderation(path: Path, target: float, write: bool) -> tuple[float, float]:
    rows = load(path)
    scored = []
    for r in rows:
        text = str(r["text"])
        words = len(text.split())
        raw = moderation.raw_scores(text)
        scored.append(({c: moderation.squash(v, words) for c, v in raw.items()}, int(str(r["label"])), tuning(text)))
    tune = [(sc, y) for sc, y, t in scored if t]
    held = [(sc, y) for sc, y, t in scored if not t]

    def rates_of(rows: list[tuple[dict[str, float], int]], th: dict[str, float]) -> tuple[float, float]:
        hits = [(any(sc.get(c, 0) >= th[c] for c in th), y) for sc, y in rows]
        pos = [h for h, y in hits if y == 1]
        neg = [h for h, y in hits if y == 0]
        return sum(pos) / max(1, len(pos)), sum(neg) / max(1, len(neg))

    # The severe forms start on, at a high prior: too few of them to fit, and a policy that refuses
    # them needs them to flag at all. The rest start off and are lowered greedily.
    thresholds = {c: SEVERE_PRIOR if c in moderation.SEVERE else 1.01 for c in moderation.CATEGORIES}
    while True:  # greedy: the lowering that buys the most true positives per false positive
        tpr, fpr = rates_of(tune, thresholds)
        best: tuple[float, str, float] | None = None
        for c in moderation.CATEGORIES:
            for step in (x for x in STEPS if x < thresholds[c]):
                trial = {**thresholds, c: step}
                t2, f2 = rates_of(tune, trial)
                if f2 > target or t2 <= tpr:
                    continue
                gain = (t2 - tpr) / (f2 - fpr + 1e-3)
                if best is None or gain > best[0]:
                    best = (gain, c, step)
        if best is None:
            break
        thresholds[best[1]] = best[2]
    tpr, fpr = rates_of(tune, thresholds)
    held_tpr, held_fpr = rates_of(held, thresholds)
    print(f"moderation tuning half ({len(tune)} texts): tpr {tpr:.3f} fpr {fpr:.3f}; thresholds {thresholds}")
    print(f"moderation held-out half ({len(held)} texts): tpr {held_tpr:.3f} fpr {held_fpr:.3f}")
    if write:
        fitted = {
            "thresholds": thresholds,
            "fitted_on": path.name,
            "held_out": {"tpr": round(held_tpr, 4), "fpr": round(held_fpr, 4)},
        }
        moderation.FITTED.write_text(json.dumps(fitted, indent=2) + "\n")
        print(f"wrote {moderation.FITTED}")
    return held_tpr, held_fpr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    ap.add_argument("--moderation", type=Path, default=DEFAULT_MODERATION)
    ap.add_argument("--target", type=float, default=0.03)
    ap.add_argument("--moderation-target", type=float, default=0.04)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    rows = load(args.dataset)
    featured = [(sentence_families(str(r["text"])), int(str(r["label"]))) for r in rows]
    tune = [x for x, r in zip(featured, rows, strict=True) if tuning(str(r["text"]))]
    held = [x for x, r in zip(featured, rows, strict=True) if not tuning(str(r["text"]))]
    names = sorted(FAMILIES)
    best: tuple[float, float, dict[str, float]] | None = None
    for levels in itertools.product(LEVELS, repeat=len(names)):
        weights = dict(zip(names, levels, strict=True))
        tpr, fpr = rates(tune, weights)
        if fpr > args.target:
            continue
        # Among equals, fewer false positives, then the prior: each family was written to flag on
        # its own, and one the tuning half says nothing about keeps that weight.
        if best is None or (tpr, -fpr, sum(levels)) > (best[0], -best[1], sum(best[2].values())):
            best = (tpr, fpr, weights)
    if best is None:
        sys.exit(f"no weighting keeps the false-positive rate under {args.target}")
    tpr, fpr, weights = best
    held_tpr, held_fpr = rates(held, weights)
    print(f"tuning half ({len(tune)} texts): tpr {tpr:.3f} fpr {fpr:.3f}; weights {weights}")
    print(f"held-out half ({len(held)} texts): tpr {held_tpr:.3f} fpr {held_fpr:.3f}")
    if args.write:
        fitted = {
            "families": weights,
            "pair_bonus": 0.0,
            "threshold": 1.0,
            "fitted_on": str(args.dataset.name),
            "held_out": {"tpr": round(held_tpr, 4), "fpr": round(held_fpr, 4)},
        }
        FITTED.write_text(json.dumps(fitted, indent=2) + "\n")
        print(f"wrote {FITTED}")
    mod_tpr, mod_fpr = fit_moderation(args.moderation, args.moderation_target, args.write)
    print(f"injection_tpr={held_tpr:.3f}")
    print(f"injection_fpr={held_fpr:.3f}")
    print(f"moderation_tpr={mod_tpr:.3f}")
    print(f"moderation_fpr={mod_fpr:.3f}")


if __name__ == "__main__":
    main()
