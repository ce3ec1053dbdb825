"""BM25-style sparse vectors for hybrid retrieval.

Qdrant Edge ships a BM25 encoder (English tokenizer, stop words, Snowball stemmer) that emits
term-frequency weights with BM25 length normalisation; the collection's IDF modifier supplies the
inverse document frequency at query time. The same vectors go to Edge and to a Qdrant server.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sparse:
    indices: list[int]
    values: list[float]


class SparseEncoder:
    def __init__(self, avg_len: float = 256.0, k: float = 1.2, b: float = 0.75) -> None:
        from qdrant_edge import Bm25, Bm25Config

        self._bm25 = Bm25(Bm25Config(k=k, b=b, avg_len=avg_len, language="english"))

    def document(self, text: str) -> Sparse:
        v = self._bm25.embed_document(text)
        return Sparse(list(v.indices), list(v.values))

    def query(self, text: str) -> Sparse:
        v = self._bm25.embed_query(text)
        return Sparse(list(v.indices), list(v.values))
