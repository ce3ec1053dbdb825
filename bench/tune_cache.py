"""Fit the semantic cache's guard on labelled question pairs; report it on pairs it did not see.

    python -m bench.tune_cache [--pairs FILE.jsonl] [--target 0.008] [--write]

FILE.jsonl holds {"q1", "q2", "label": 1 duplicate | 0 not} (default: the Quora pairs' development
half). Pairs are split in two by a hash of their text: the tuning half fits the guard's logistic
score (`caches.guard`) over the pairs its rules let through, and sets the threshold at which at
most `--target` of the tuning half's non-duplicates would be served a cached answer (under the
issue's 0.01, leaving room for the difference between halves). The other half is held out: its
hit rate on duplicates and false-hit rate on non-duplicates are what the guard does on questions
it never saw. Questions are embedded with the default encoder, as the cache embeds them.
`--write` saves the weights, threshold and figures to caches/guard.json.
Last lines: `semantic_hit_rate=` and `semantic_false_hit_rate=` (held out).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from caches.guard import FEATURES, GUARD_FILE, pair_features, veto
from caches.question import facts
from encoders.dense import DenseEncoder
from encoders.registry import Encoders
from index.active import DEFAULT_ENCODER, encoder_catalog
from keel import offline  # noqa: F401
from keel.config import Settings

DEFAULT_PAIRS = Path("../shared/datasets/qqp_pairs_dev/pairs.jsonl")
DEFAULT_ADVERSARIAL = Path("bench/results/swapped-pairs.jsonl")


def load(path: Path) -> list[dict[str, object]]:
    if not path.is_file():
        sys.exit(f"no pairs at {path}: pass --pairs FILE.jsonl")
    with path.open() as f:
        return [json.loads(line) for line in f if line.strip()]


def tuning(pair: dict[str, object]) -> bool:
    digest = hashlib.sha256(f"{pair['q1']}\n{pair['q2']}".encode()).digest()
    return digest[0] % 2 == 0


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, steps: int = 50) -> tuple[np.ndarray, float]:
    """Newton's method on the L2-regularised log-loss; x standardised inside, weights returned raw."""
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-9
    z = np.hstack([(x - mean) / std, np.ones((len(x), 1))])
    w = np.zeros(z.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-z @ w))
        grad = z.T @ (p - y) / len(y) + l2 * np.r_[w[:-1], 0]
        hess = (z * (p * (1 - p))[:, None]).T @ z / len(y) + l2 * np.diag(np.r_[np.ones(len(w) - 1), 0])
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    weights = w[:-1] / std
    return weights, float(w[-1] - (w[:-1] * mean / std).sum())


def measured(
    pairs: list[dict[str, object]], encoder: DenseEncoder
) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """Each pair's cosine, label, the rules' veto ("" if none) and the score's features."""
    q1, q2 = [str(p["q1"]) for p in pairs], [str(p["q2"]) for p in pairs]
    cosine = (encoder.embed(q1) * encoder.embed(q2)).sum(axis=1)
    y = np.array([int(str(p["label"])) for p in pairs])
    f1, f2 = [facts(q) for q in q1], [facts(q) for q in q2]
    reasons = [veto(a, b) for a, b in zip(f1, f2, strict=True)]
    x = np.array([pair_features(a, b, float(c)) for a, b, c in zip(f1, f2, cosine, strict=True)])
    return cosine, y, reasons, x


def rates(hit: np.ndarray, y: np.ndarray, half: np.ndarray) -> tuple[float, float]:
    return float(hit[half & (y == 1)].mean()), float(hit[half & (y == 0)].mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=Path, default=DEFAULT_PAIRS)
    parser.add_argument("--target", type=float, default=0.008, help="false-hit rate allowed on the tuning half")
    parser.add_argument(
        "--adversarial",
        type=Path,
        default=DEFAULT_ADVERSARIAL,
        help="near misses to report the fitted guard on (python -m bench.swap_pairs builds them)",
    )
    parser.add_argument("--write", action="store_true", help=f"save the fitted guard to {GUARD_FILE}")
    args = parser.parse_args()
    pairs = load(args.pairs)
    settings = Settings()
    encoder = Encoders(settings.torch_threads, settings.embed_batch_size).get(
        encoder_catalog(settings)[DEFAULT_ENCODER]
    )
    cosine, y, reasons, x = measured(pairs, encoder)
    half = np.array([tuning(p) for p in pairs])
    passes = np.array([not r for r in reasons])

    fit = half & passes
    weights, bias = fit_logistic(x[fit], y[fit].astype(float))
    score = np.where(passes, 1 / (1 + np.exp(-(x @ weights + bias))), 0.0)
    negatives = np.sort(score[half & (y == 0)])[::-1]
    allowed = int(args.target * len(negatives))  # this many tuning non-duplicates may pass
    threshold = float(np.nextafter(negatives[allowed], 1.0)) if allowed < len(negatives) else 0.0
    hit = score >= threshold
    min_cosine = round(float(np.floor(cosine[hit & half].min() * 100) / 100), 2) if (hit & half).any() else 1.0

    tune_hit, tune_fhr = rates(hit, y, half)
    held_hit, held_fhr = rates(hit, y, ~half)
    vetoed = Counter(r for r, yy in zip(reasons, y, strict=True) if r)
    print(f"{len(pairs)} pairs ({(y == 1).mean():.0%} duplicates); tuning {half.sum()}, held out {(~half).sum()}")
    print(
        f"rules veto: {dict(vetoed)} (duplicates let through: {passes[y == 1].mean():.3f}, non-duplicates {passes[y == 0].mean():.3f})"
    )
    print(
        "raw cosine for comparison, held out: "
        + ", ".join(
            f"t={t:.2f} hit {((cosine >= t) & ~half & (y == 1)).sum() / (~half & (y == 1)).sum():.3f} "
            f"false {((cosine >= t) & ~half & (y == 0)).sum() / (~half & (y == 0)).sum():.4f}"
            for t in (0.90, 0.95, 0.97)
        )
    )
    print(f"threshold {threshold:.4f} (score), min cosine {min_cosine:.2f}")
    print(f"tuning   hit rate {tune_hit:.3f}  false-hit rate {tune_fhr:.4f}")
    print(f"held out hit rate {held_hit:.3f}  false-hit rate {held_fhr:.4f}")
    near_fhr = None
    if args.adversarial.is_file():
        near = [p for p in load(args.adversarial) if int(str(p["label"])) == 0]
        n_cos, _, n_reasons, n_x = measured(near, encoder)
        n_score = 1 / (1 + np.exp(-(n_x @ weights + bias)))
        n_hit = (n_cos >= min_cosine) & np.array([not r for r in n_reasons]) & (n_score >= threshold)
        near_fhr = float(n_hit.mean())
        print(
            f"near misses ({args.adversarial.name}, {len(near)}): false-hit rate {near_fhr:.4f}; "
            f"rules veto {dict(Counter(r for r in n_reasons if r))}"
        )
    else:
        print(f"no near misses at {args.adversarial}: python -m bench.swap_pairs builds them")
    if args.write:
        GUARD_FILE.write_text(
            json.dumps(
                {
                    "features": list(FEATURES),
                    "weights": [round(float(w), 6) for w in weights],
                    "bias": round(bias, 6),
                    "threshold": threshold,
                    "min_cosine": min_cosine,
                    "fitted_on": {
                        "pairs": args.pairs.name,
                        "encoder": encoder.embedding_version("").model,
                        "target_false_hit_rate": args.target,
                        "tuning": {"hit_rate": round(tune_hit, 4), "false_hit_rate": round(tune_fhr, 4)},
                        "held_out": {"hit_rate": round(held_hit, 4), "false_hit_rate": round(held_fhr, 4)},
                        "near_misses": None
                        if near_fhr is None
                        else {"pairs": args.adversarial.name, "false_hit_rate": round(near_fhr, 4)},
                    },
                },
                indent=2,
            )
            + "\n"
        )
        print(f"wrote {GUARD_FILE}")
    print(f"semantic_hit_rate={held_hit:.3f}")
    print(f"semantic_false_hit_rate={held_fhr:.4f}")
    if near_fhr is not None:
        print(f"near_miss_false_hit_rate={near_fhr:.4f}")


if __name__ == "__main__":
    main()
