"""Hybrid retrieval: a dense (MiniLM) and a BM25 prefetch, fused by Qdrant with RRF.

Every search is filtered by tenant, the caller's access groups and the tenant's published
generation (see `retrieval.filters`). The fused order comes from Qdrant; the dense and sparse
searches that it fuses are also read on their own so every candidate carries both raw scores
(the re-scorer and the router use them). On Edge each search is about a millisecond.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ingestion.embed import Embedder
from ingestion.sparse import SparseEncoder
from keel.query_contracts import Candidate, Scored
from vectorstore.base import Hit, VectorStore, Where

MODES = ("hybrid", "dense", "bm25")


@dataclass
class Retrieved:
    scored: list[Scored]
    candidates: dict[str, Candidate]


class HybridRetriever:
    def __init__(self, store: VectorStore, collection: str, embedder: Embedder, sparse: SparseEncoder) -> None:
        self.store = store
        self.collection = collection
        self.embedder = embedder
        self.sparse = sparse

    def retrieve(self, question: str, where: Where, mode: str, limit: int, prefetch: int) -> Retrieved:
        dense_hits: list[Hit] = []
        sparse_hits: list[Hit] = []
        if mode in ("hybrid", "dense"):
            dense_vec = self.embedder.embed_query(question).tolist()
            dense_hits = self.store.search_dense(self.collection, dense_vec, where, prefetch)
        if mode in ("hybrid", "bm25"):
            sparse_vec = self.sparse.query(question)
            if sparse_vec.indices:  # a question of stop words only has no BM25 terms
                sparse_hits = self.store.search_sparse(self.collection, sparse_vec, where, prefetch)
        if mode == "hybrid" and dense_hits and sparse_hits:
            fused = self.store.search_hybrid(self.collection, dense_vec, sparse_vec, where, limit, prefetch)
        else:
            fused = (dense_hits or sparse_hits)[:limit]
        dense = {h.id: h.score for h in dense_hits}
        sparse = {h.id: h.score for h in sparse_hits}
        scored = [
            Scored(h.id, str(h.payload.get("doc_id", "")), dense.get(h.id), sparse.get(h.id), h.score) for h in fused
        ]
        return Retrieved(scored, {h.id: candidate(h) for h in fused})


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
    )
