"""Re-scoring retrieval candidates: a cross-encoder when one is configured, else score fusion.

No cross-encoder weights can be had from the package registries here, so the offline default is
`FusionReranker`: a convex combination of the candidate's min-max normalised dense (cosine) and
BM25 scores. RRF, which retrieval uses, looks only at ranks and throws away how far apart the
scores are; a tuned convex combination keeps it and is known to beat RRF on in-domain data
(Bruch, Gai & Ingber, "An Analysis of Fusion Functions for Hybrid Retrieval", TOIS 2023).
Its one weight is tuned on the train split (`python -m evaluation.tune_fusion`), never on test;
`keel eval` measures it. A configured `CrossEncoder` (a local path) replaces it.

Both honour a deadline: past it they raise `RerankTimeout` and the workflow keeps the retrieval
order, marking the answer `degraded: rerank_skipped`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol

from contracts.query import Candidate, Scored
from keel.errors import RerankTimeout


class Reranker(Protocol):
    name: str
    reads_text: bool  # False: `rerank` is called with no candidates (scores are all it uses)

    def rerank(
        self, question: str, scored: Sequence[Scored], candidates: dict[str, Candidate], deadline: float
    ) -> list[Scored]:
        """Best first. `deadline` is a `time.monotonic()` value."""
        ...


def _minmax(values: Sequence[float | None]) -> list[float]:
    present = [v for v in values if v is not None]
    if not present:
        return [0.0] * len(values)
    lo, hi = min(present), max(present)
    span = hi - lo
    # A candidate missing from one list scored below everything in it: normalised to 0.
    return [0.0 if v is None else (1.0 if span == 0 else (v - lo) / span) for v in values]


class FusionReranker:
    def __init__(self, dense_weight: float) -> None:
        self.dense_weight = dense_weight
        self.reads_text = False
        self.name = f"fusion-dense{dense_weight:g}"

    def rerank(
        self, question: str, scored: Sequence[Scored], candidates: dict[str, Candidate], deadline: float
    ) -> list[Scored]:
        dense = _minmax([s.dense for s in scored])
        sparse = _minmax([s.sparse for s in scored])
        w = self.dense_weight
        out = [replace(s, rerank=w * d + (1 - w) * b) for s, d, b in zip(scored, dense, sparse, strict=True)]
        return sorted(out, key=lambda s: -(s.rerank or 0.0))


class CrossEncoderReranker:
    """A sentence-transformers CrossEncoder loaded from a local path (never a hub id)."""

    def __init__(self, path: str, batch_size: int = 8) -> None:
        from sentence_transformers import CrossEncoder

        self.model = CrossEncoder(path, device="cpu", local_files_only=True)
        self.batch_size = batch_size
        self.reads_text = True
        self.name = f"cross-encoder:{path.rstrip('/').rsplit('/', 1)[-1]}"

    def rerank(
        self, question: str, scored: Sequence[Scored], candidates: dict[str, Candidate], deadline: float
    ) -> list[Scored]:
        scores: list[float] = []
        for start in range(0, len(scored), self.batch_size):
            if time.monotonic() > deadline:  # stop spending CPU on a step that is already skipped
                raise RerankTimeout(f"rerank passed its deadline after {start} of {len(scored)} candidates")
            batch = scored[start : start + self.batch_size]
            pairs = [(question, candidates[s.point_id].text) for s in batch]
            scores.extend(float(x) for x in self.model.predict(pairs, show_progress_bar=False))
        out = [replace(s, rerank=v) for s, v in zip(scored, scores, strict=True)]
        return sorted(out, key=lambda s: -(s.rerank or 0.0))


def build_reranker(cross_encoder_path: str | None, fusion_dense_weight: float) -> Reranker:
    if cross_encoder_path:
        return CrossEncoderReranker(cross_encoder_path)
    return FusionReranker(fusion_dense_weight)
