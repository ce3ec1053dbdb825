"""Fit the injection detector's weights on labelled texts; report it on texts it did not see.

    python -m bench.tune_guard [--dataset FILE.jsonl] [--target 0.03] [--write]

FILE.jsonl holds {"text", "label": 1 attack | 0 benign} (default: the development set). Texts are
split in two by a hash of their text: on the tuning half, every weighting of the rule families
(`guardrails.injection`: each family alone flags, needs a second one, or is left out) is tried,
and the one that flags the most attacks while at most `--target` of the benign texts are flagged
is kept (under the issue's 0.05, leaving room for the difference between halves; ties go to the
weighting that needs more families to agree). The other half is held out: its true- and
false-positive rates are what the detector does on texts it never saw. `--write` saves the
weights and figures to guardrails/injection.json. Last lines: `injection_tpr=`, `injection_fpr=`
(held out).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import sys
from pathlib import Path

from guardrails.injection import FAMILIES, FITTED, families_of, sentences
from guardrails.normalize import decoded, normalize

DEFAULT_DATASET = Path("../shared/datasets/prompt_injection_dev/prompts.jsonl")
LEVELS = (0.0, 0.5, 1.0)  # left out, needs a second family, flags alone (threshold 1.0)


def load(path: Path) -> list[dict[str, object]]:
    if not path.is_file():
        sys.exit(f"no texts at {path}: pass --dataset FILE.jsonl")
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    ap.add_argument("--target", type=float, default=0.03)
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
        strictness = -sum(levels)  # among equals, the weighting that asks more families to agree
        if best is None or (tpr, strictness) > (best[0], -sum(best[2].values())):
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
    print(f"injection_tpr={held_tpr:.3f}")
    print(f"injection_fpr={held_fpr:.3f}")


if __name__ == "__main__":
    main()
