"""Score fusion of a candidate's dense (cosine) and BM25 scores: the offline re-scorer's maths.

Each list is normalised on its own, then the two are mixed with one weight:

- `minmax`: (s - min) / (max - min) over the candidates. Sensitive to the pool's worst member,
  which depends on how deep retrieval went.
- `zscore`: (s - mean) / std over the list's scores. Self-normalising: the scale of a cosine and
  of a BM25 score (which grows with query length and the corpus's IDF) drop out, and one outlier
  at the bottom moves nothing. Bruch, Gai & Ingber ("An Analysis of Fusion Functions for Hybrid
  Retrieval", TOIS 2023) find convex combinations of normalised scores beat RRF in and out of
  domain once the weight is set on a few queries.
- `rrf`: 1 / (k + rank) per list, summed (the weight is ignored): only ranks count.

A candidate missing from one list ranked below everything retrieved in it, so it takes that
list's lowest normalised value (RRF: the rank after the last).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

METHODS = ("minmax", "zscore", "rrf")
RRF_K = 60


def normalise(values: Sequence[float | None], method: str) -> list[float]:
    present = [v for v in values if v is not None]
    if not present:
        return [0.0] * len(values)
    if method == "minmax":
        lo, hi = min(present), max(present)
        span = hi - lo
        return [0.0 if v is None else (1.0 if span == 0 else (v - lo) / span) for v in values]
    if method == "zscore":
        mean = sum(present) / len(present)
        std = math.sqrt(sum((v - mean) ** 2 for v in present) / len(present))
        if std == 0:
            return [0.0 if v is None else 1.0 for v in values]
        floor = (min(present) - mean) / std
        return [floor if v is None else (v - mean) / std for v in values]
    if method == "rrf":
        order = sorted((i for i, v in enumerate(values) if v is not None), key=lambda i: -(values[i] or 0.0))
        rank = {i: r for r, i in enumerate(order, start=1)}
        last = len(order) + 1
        return [1.0 / (RRF_K + rank.get(i, last)) for i in range(len(values))]
    raise ValueError(f"unknown fusion method {method!r}; one of {', '.join(METHODS)}")


def reciprocal_rank(lists: Sequence[Sequence[str]], k: int = RRF_K) -> list[tuple[str, float]]:
    """Ids of ranked lists fused by reciprocal rank, 1 / (k + rank from 0) summed over the lists
    that hold each: Qdrant's RRF over prefetches, the same scores. Ties keep the order in which
    the lists first hold each id (Qdrant breaks them its own way)."""
    scores: dict[str, float] = {}
    for ranked in lists:
        for rank, point_id in enumerate(ranked):
            scores[point_id] = scores.get(point_id, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda item: -item[1])  # stable: first seen first among ties


def fuse(
    dense: Sequence[float | None], sparse: Sequence[float | None], method: str, dense_weight: float
) -> list[float]:
    """One fused score per candidate, in the candidates' order."""
    d = normalise(dense, method)
    b = normalise(sparse, method)
    if method == "rrf":
        return [x + y for x, y in zip(d, b, strict=True)]
    w = dense_weight
    return [w * x + (1 - w) * y for x, y in zip(d, b, strict=True)]
