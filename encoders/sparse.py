"""BM25 as sparse vectors, scored with the tenant's own statistics (Lucene's BM25).

Terms are what Lucene's English analysis and `bm25s` make of a text by default: lower case,
tokens of two or more word characters, Lucene's 33 English stop words removed, Snowball English
stems (PyStemmer). Each stem's id is a 31-bit hash, so no vocabulary has to be shared between
processes or kept in step with the index.

A chunk's vector holds each term's BM25 term-frequency part, tf / (tf + k1·(1 − b + b·dl/avgdl)),
where dl is the chunk's term count and avgdl the tenant's mean when the chunk was indexed. A
question's vector holds each of its terms' IDF over the tenant's chunks, ln(1 + (N − df + 0.5) /
(df + 0.5)), once per occurrence. Their dot product, which Qdrant computes with no modifier of its
own, is the chunk's BM25 score; N, df and avgdl are the tenant's (`stores.term_stats`), so no
other tenant's documents move a ranking. The same vectors go to Edge and to a Qdrant server.
"""

from __future__ import annotations

import math
import zlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from keel.words import BM25_TOKEN, STOP_WORDS, fold

SPARSE_VERSION = "bm25t1"  # the analysis and the weights above; a change means re-indexing


@dataclass(frozen=True)
class Sparse:
    indices: list[int]
    values: list[float]


class SparseEncoder:
    def __init__(self, k1: float = 1.5, b: float = 0.75) -> None:
        import Stemmer

        self.k1, self.b = k1, b
        self._stemmer = Stemmer.Stemmer("english")
        self._ids: dict[str, int] = {}  # stem -> id, memoised: a corpus has few distinct words

    def terms(self, text: str) -> list[int]:
        """The text's term ids, in order, repeats kept."""
        words = [w for w in BM25_TOKEN.findall(fold(text)) if w not in STOP_WORDS]
        out = []
        for stem in self._stemmer.stemWords(words):
            tid = self._ids.get(stem)
            if tid is None:
                tid = self._ids.setdefault(stem, zlib.crc32(stem.encode()) & 0x7FFFFFFF)
            out.append(tid)
        return out

    def document(self, terms: list[int], avg_len: float) -> Sparse:
        """A chunk's vector from its terms, for a tenant whose chunks average `avg_len` terms."""
        tf = Counter(terms)
        norm = self.k1 * (1 - self.b + self.b * len(terms) / max(avg_len, 1.0))
        ids = sorted(tf)
        return Sparse(ids, [tf[t] / (tf[t] + norm) for t in ids])

    def query(self, terms: list[int], chunks: int, df: Mapping[int, int]) -> Sparse:
        """A question's vector from its terms, over a tenant of `chunks` chunks whose terms are in
        `df` chunks each: IDF per occurrence; terms no chunk holds drop out."""
        qtf = Counter(terms)
        ids = sorted(t for t in qtf if df.get(t, 0) > 0)
        return Sparse(ids, [qtf[t] * math.log(1 + (chunks - df[t] + 0.5) / (df[t] + 0.5)) for t in ids])
