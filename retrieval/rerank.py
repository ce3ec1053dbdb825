"""Re-scoring retrieval candidates: a cross-encoder when one is configured, else score fusion.

No cross-encoder weights can be had from the package registries here, so the offline default is
`FusionReranker`: the candidate's dense (cosine) and BM25 scores, each normalised over the
candidates and mixed with one weight (`retrieval.fusion`). RRF, which retrieval uses, looks only
at ranks and throws away how far apart the scores are; a normalised convex combination keeps it
(Bruch, Gai & Ingber, "An Analysis of Fusion Functions for Hybrid Retrieval", TOIS 2023). The
method and weight are chosen on tuning queries of several corpora (`python -m
evaluation.tune_fusion`), never on test; `keel eval` measures them. A configured `CrossEncoder`
(a local path) replaces it.

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
from retrieval.fusion import METHODS, fuse


class Reranker(Protocol):
    name: str
    reads_text: bool  # False: `rerank` is called with no candidates (scores are all it uses)

    def rerank(
        self, question: str, scored: Sequence[Scored], candidates: dict[str, Candidate], deadline: float
    ) -> list[Scored]:
        """Best first. `deadline` is a `time.monotonic()` value."""
        ...


class FusionReranker:
    def __init__(self, method: str, dense_weight: float) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown fusion method {method!r}; one of {', '.join(METHODS)}")
        self.method = method
        self.dense_weight = dense_weight
        self.reads_text = False
        self.name = f"fusion-{method}" + ("" if method == "rrf" else f"-dense{dense_weight:g}")

    def rerank(
        self, question: str, scored: Sequence[Scored], candidates: dict[str, Candidate], deadline: float
    ) -> list[Scored]:
        fused = fuse([s.dense for s in scored], [s.sparse for s in scored], self.method, self.dense_weight)
        out = [replace(s, rerank=v) for s, v in zip(scored, fused, strict=True)]
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


def build_reranker(cross_encoder_path: str | None, fusion_method: str, fusion_dense_weight: float) -> Reranker:
    if cross_encoder_path:
        return CrossEncoderReranker(cross_encoder_path)
    return FusionReranker(fusion_method, fusion_dense_weight)
