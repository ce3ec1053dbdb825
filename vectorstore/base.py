"""The vector-store contract: what Keel needs from Qdrant and nothing more.

Filters are Keel's own small type (`Where`) so callers never touch either backend's models;
each backend translates it. Both backends must give the same answers for the same calls:
tests/vectorstore/test_congruence.py runs every operation on both and compares.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from encoders.sparse import Sparse

DENSE = "dense"
# BM25 with the tenant's own statistics (`encoders.sparse`): plain dot product, no IDF modifier. A
# collection made before it has a `bm25` vector with Qdrant's collection-wide IDF instead and is
# refused (`IndexOutdated`): its BM25 mixed every tenant's documents into each ranking.
SPARSE = "bm25t"
LEGACY_SPARSE = "bm25"
BM25_LEN = "bm25_len"  # payload: the chunk's BM25 term count (its share of the tenant's statistics)

# Payload fields with an index: tenant first (it partitions every query), then the filters every
# read uses (access groups, visibility window) and the keys writes select by; the semantic
# cache's collections filter on scope and generation (an index on a field a point lacks is free).
KEYWORD_INDEXES = (
    "tenant",
    "access_groups",
    "doc_id",
    "version",
    "source",
    "embedding_version",
    "scope",
    "title_key",  # the second hop looks documents up by the titles passages name (`retrieval.links`)
)
INTEGER_INDEXES = ("visible_from", "visible_until", "generation")
FLOAT_INDEXES = ("retired_at",)


@dataclass(frozen=True)
class Cond:
    key: str
    value: str | int | bool | None = None  # exact match
    any: tuple[str, ...] | None = None  # match any of
    gte: float | None = None
    gt: float | None = None
    lte: float | None = None
    lt: float | None = None


@dataclass(frozen=True)
class Where:
    must: tuple[Cond, ...] = ()
    must_not: tuple[Cond, ...] = ()

    def and_(self, *conds: Cond) -> Where:
        return Where(self.must + conds, self.must_not)


@dataclass
class ChunkPoint:
    id: str
    dense: list[float]
    sparse: Sparse
    payload: dict[str, Any]


@dataclass
class Hit:
    id: str
    score: float
    payload: dict[str, Any] = field(default_factory=dict)
    sparse: Sparse | None = None  # read only when asked for (`scroll(..., with_sparse=True)`)
    dense: list[float] | None = None  # likewise (`with_dense=True`: a backup)


class VectorStore(Protocol):
    def ensure_collection(self, collection: str, dim: int) -> None: ...

    def upsert(self, collection: str, points: Sequence[ChunkPoint]) -> None: ...

    def set_payload(self, collection: str, where: Where, payload: dict[str, Any]) -> None: ...

    def delete(self, collection: str, where: Where) -> None: ...

    def count(self, collection: str, where: Where | None = None) -> int: ...

    def search_dense(
        self, collection: str, vector: Sequence[float], where: Where, limit: int, with_payload: bool = True
    ) -> list[Hit]: ...

    def search_sparse(
        self, collection: str, vector: Sparse, where: Where, limit: int, with_payload: bool = True
    ) -> list[Hit]: ...

    def search_hybrid(
        self,
        collection: str,
        dense: Sequence[float],
        sparse: Sparse,
        where: Where,
        limit: int,
        prefetch: int = 100,
        rrf_k: int = 60,
    ) -> list[Hit]: ...

    def scroll(
        self,
        collection: str,
        where: Where,
        limit: int = 256,
        offset: str | None = None,
        with_sparse: bool = False,
        with_dense: bool = False,
    ) -> tuple[list[Hit], str | None]:
        """A page of matching points in id order, and the id to go on from (None: the last page)."""
        ...

    def retrieve(self, collection: str, ids: Sequence[str], with_sparse: bool = False) -> list[Hit]:
        """The points with these ids that exist, with their payloads (and BM25 vectors if asked)."""
        ...

    def drop_collection(self, collection: str) -> None:
        """Remove a collection and its files (nothing happens when there is none)."""
        ...

    def term_lists(self, collection: str, where: Where) -> list[tuple[list[int], int]]:
        """Per matching point: its BM25 term ids and term count (a version's share of the statistics)."""
        ...

    def close(self) -> None: ...


# -- what both backends' records turn into (their point classes share these attributes) ---------
def hit_of(record: Any) -> Hit:
    return Hit(id=str(record.id), score=float(getattr(record, "score", 0.0) or 0.0), payload=dict(record.payload or {}))


def hits_of(records: Sequence[Any], with_vectors: bool = False) -> list[Hit]:
    """Hits from a backend's records; with the vectors they carry when asked for them."""
    hits = [hit_of(r) for r in records]
    if with_vectors:
        for hit, r in zip(hits, records, strict=True):
            vectors = r.vector if isinstance(r.vector, dict) else {}
            sparse = vectors.get(SPARSE)
            if sparse is not None and hasattr(sparse, "indices"):
                hit.sparse = Sparse(list(sparse.indices), list(sparse.values))
            if (dense := vectors.get(DENSE)) is not None:
                hit.dense = [float(x) for x in dense]
    return hits


def vector_names(with_sparse: bool, with_dense: bool) -> list[str] | bool:
    """The `with_vector(s)` argument both clients take: the named vectors asked for, or none."""
    names = [name for name, wanted in ((SPARSE, with_sparse), (DENSE, with_dense)) if wanted]
    return names or False
