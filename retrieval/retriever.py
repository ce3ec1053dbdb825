"""Hybrid retrieval: a dense (MiniLM) and a BM25 prefetch, fused by Qdrant with RRF.

BM25 is scored with the tenant's own term statistics (`encoders.sparse`, `stores.term_stats`).

Every search is filtered by tenant, the caller's access groups and the tenant's published
generation (see `retrieval.filters`). The fused order comes from Qdrant; the dense and sparse
searches that it fuses are also read on their own so every candidate carries both raw scores
(the re-scorer and the router use them). On Edge each search is about a millisecond.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import redis

from contracts.query import Candidate, Scored
from encoders.sparse import Sparse, SparseEncoder
from index.active import ActiveIndex
from retrieval.fusion import reciprocal_rank
from stores import term_stats
from vectorstore.base import Cond, Hit, VectorStore, Where

MODES = ("hybrid", "dense", "bm25")


@dataclass
class Retrieved:
    scored: list[Scored]
    candidates: dict[str, Candidate]
    sparse: Sparse | None = None  # the question's BM25 vector (None: not searched), for a later search


class HybridRetriever:
    def __init__(self, store: VectorStore, sparse: SparseEncoder, r: redis.Redis) -> None:
        self.store = store
        self.sparse = sparse
        self.r = r  # the tenants' BM25 statistics

    def retrieve(
        self,
        index: ActiveIndex,
        tenant: str,
        question: str,
        where: Where,
        mode: str,
        limit: int,
        prefetch: int,
        vector: np.ndarray | None = None,
        sparse: Sparse | None = None,
    ) -> Retrieved:
        """From the tenant's index: its collection, its encoder for the question (or the question's
        `vector` from that encoder, when the caller has it already), its BM25 statistics (or the
        question's BM25 `sparse` vector an earlier search of the same request made from them)."""
        collection = index.collection
        dense_hits: list[Hit] = []
        sparse_hits: list[Hit] = []
        # Ids and scores only: the payloads of the fused best `limit` are read once, below.
        if mode in ("hybrid", "dense"):
            dense_vec = (index.embedder.embed_query(question) if vector is None else vector).tolist()
            dense_hits = self.store.search_dense(collection, dense_vec, where, prefetch, with_payload=False)
        if mode in ("hybrid", "bm25"):
            if sparse is None:
                terms = self.sparse.terms(question)
                stats = term_stats.read(self.r, tenant, terms)
                sparse = self.sparse.query(terms, stats.chunks, stats.df)
            sparse_vec = sparse
            if sparse_vec.indices:  # a question of stop words only has no BM25 terms
                sparse_hits = self.store.search_sparse(collection, sparse_vec, where, prefetch, with_payload=False)
        if mode == "hybrid" and dense_hits and sparse_hits:
            # Reciprocal rank over both lists, as Qdrant's hybrid query fuses its two prefetches:
            # a third search for what these two already hold cost a query ~5 ms.
            fused = reciprocal_rank([[h.id for h in dense_hits], [h.id for h in sparse_hits]])[:limit]
        else:
            fused = [(h.id, h.score) for h in (dense_hits or sparse_hits)[:limit]]
        points = {h.id: h for h in self.store.retrieve(collection, [point_id for point_id, _ in fused])}
        dense_scores = {h.id: h.score for h in dense_hits}
        sparse_scores = {h.id: h.score for h in sparse_hits}
        scored = [
            Scored(
                point_id=point_id,
                doc_id=str(points[point_id].payload.get("doc_id", "")),
                dense=dense_scores.get(point_id),
                sparse=sparse_scores.get(point_id),
                fused=score,
            )
            for point_id, score in fused
            if point_id in points  # deleted since the search: gone
        ]
        return Retrieved(scored, {s.point_id: candidate(points[s.point_id]) for s in scored}, sparse)


def candidate(hit: Hit) -> Candidate:
    p: dict[str, Any] = hit.payload
    return Candidate(
        point_id=hit.id,
        doc_id=str(p.get("doc_id", "")),
        version=str(p.get("version", "")),
        source=str(p.get("source", "")),
        title=str(p.get("title", "")),
        section_path=list(p.get("section_path") or []),
        chunk_index=int(p.get("chunk_index", 0)),
        text=str(p.get("text", "")),
        token_count=int(p.get("token_count", 0)),
        embedding_version=str(p.get("embedding_version", "")),
        injection_flag=None if p.get("injection_flag") is None else bool(p["injection_flag"]),
    )


def neighbours(store: VectorStore, collection: str, tenant: str, hit: Candidate, window: int) -> list[Candidate]:
    """The chunks of the same document version within `window` of the hit (context widening)."""
    where = Where(
        must=(
            Cond("tenant", value=tenant),
            Cond("doc_id", value=hit.doc_id),
            Cond("version", value=hit.version),
            Cond("chunk_index", gte=hit.chunk_index - window, lte=hit.chunk_index + window),
        ),
        must_not=(Cond("chunk_index", value=hit.chunk_index),),
    )
    hits, _ = store.scroll(collection, where, limit=2 * window)
    return [candidate(h) for h in hits]
