"""qdrant-client backend: a Qdrant server or cluster (`QDRANT_URL`), or client local mode in tests.

The client is built without retries of its own: retries belong to Temporal. Connection failures
become `VectorStoreUnavailable` (retryable), so an unreachable server is retried, then recorded.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from encoders.sparse import Sparse
from keel.errors import IndexOutdated, VectorStoreUnavailable
from vectorstore.base import (
    BM25_LEN,
    DENSE,
    FLOAT_INDEXES,
    INTEGER_INDEXES,
    KEYWORD_INDEXES,
    SPARSE,
    ChunkPoint,
    Cond,
    Hit,
    Where,
    hits_of,
    vector_names,
)


def _cond(c: Cond) -> models.FieldCondition:
    if c.value is not None:
        return models.FieldCondition(key=c.key, match=models.MatchValue(value=c.value))
    if c.any is not None:
        return models.FieldCondition(key=c.key, match=models.MatchAny(any=list(c.any)))
    return models.FieldCondition(key=c.key, range=models.Range(gte=c.gte, gt=c.gt, lte=c.lte, lt=c.lt))


def to_filter(where: Where | None) -> models.Filter | None:
    if where is None or (not where.must and not where.must_not):
        return None
    return models.Filter(
        must=[_cond(c) for c in where.must] or None,
        must_not=[_cond(c) for c in where.must_not] or None,
    )


def _sparse(v: Sparse) -> models.SparseVector:
    return models.SparseVector(indices=list(v.indices), values=list(v.values))


def _unreachable(exc: BaseException) -> bool:
    if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
        return True
    # httpx/grpc transport errors have no common base we can import lazily
    name = type(exc).__name__
    return any(s in name for s in ("Connect", "Timeout", "Transport", "Unavailable", "ResponseHandling"))


@dataclass(frozen=True, kw_only=True)
class Layout:
    """How a collection is spread over a server's nodes (set when it is created)."""

    shards: int = 1
    replication: int = 1
    write_consistency: int = 1


class ServerStore:
    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        path: str | None = None,
        timeout: int = 10,
        layout: Layout | None = None,
    ) -> None:
        self.layout = layout or Layout()
        # Several URLs (comma-separated) name nodes of one cluster: a node that cannot be reached
        # hands the next call to the next node. The failed call itself is VectorStoreUnavailable,
        # retried by Temporal, so a lost node costs a retry, not an answer.
        self.urls = [u.strip() for u in url.split(",") if u.strip()] if url else [path or ":memory:"]
        if url:
            self.clients = [
                QdrantClient(url=u, api_key=api_key, timeout=timeout, check_compatibility=False) for u in self.urls
            ]
        else:
            self.clients = [QdrantClient(path=path) if path else QdrantClient(location=":memory:")]
        self._current = 0
        self._known: set[str] = set()

    @property
    def client(self) -> QdrantClient:
        return self.clients[self._current]

    @property
    def where(self) -> str:
        return self.urls[self._current]

    @contextmanager
    def _unavailable_as_error(self) -> Iterator[None]:
        """A node that cannot be reached is VectorStoreUnavailable (retryable), and the next
        call goes to the next node."""
        try:
            yield
        except Exception as exc:
            if not _unreachable(exc):
                raise
            where = self.where
            self._current = (self._current + 1) % len(self.clients)
            raise VectorStoreUnavailable(f"Qdrant at {where} is unreachable: {type(exc).__name__}: {exc}") from exc

    def ensure_collection(self, collection: str, dim: int) -> None:
        """Created if absent, with its payload indexes. Every process of a deployment may call
        this at once: a creation another one won is not an error, and the indexes are declared
        each time (declaring one that exists changes nothing), so a creator that died between
        the two leaves nothing half made."""
        if collection in self._known:
            return
        with self._unavailable_as_error():
            if not self.client.collection_exists(collection):
                try:
                    self.client.create_collection(
                        collection,
                        vectors_config={DENSE: models.VectorParams(size=dim, distance=models.Distance.COSINE)},
                        sparse_vectors_config={SPARSE: models.SparseVectorParams()},
                        shard_number=self.layout.shards,
                        replication_factor=self.layout.replication,
                        write_consistency_factor=self.layout.write_consistency,
                    )
                except UnexpectedResponse as exc:
                    if exc.status_code != 409:  # 409: created by another process meanwhile
                        raise
            elif SPARSE not in (self.client.get_collection(collection).config.params.sparse_vectors or {}):
                raise IndexOutdated(collection)
            for key in KEYWORD_INDEXES:
                schema: Any = (
                    models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True)
                    if key == "tenant"
                    else models.PayloadSchemaType.KEYWORD
                )
                self.client.create_payload_index(collection, key, field_schema=schema)
            for key in INTEGER_INDEXES:
                self.client.create_payload_index(collection, key, field_schema=models.PayloadSchemaType.INTEGER)
            for key in FLOAT_INDEXES:
                self.client.create_payload_index(collection, key, field_schema=models.PayloadSchemaType.FLOAT)
        self._known.add(collection)

    def upsert(self, collection: str, points: Sequence[ChunkPoint]) -> None:
        if not points:
            return
        structs = [
            models.PointStruct(id=p.id, vector={DENSE: list(p.dense), SPARSE: _sparse(p.sparse)}, payload=p.payload)
            for p in points
        ]
        with self._unavailable_as_error():
            self.client.upsert(collection, structs, wait=True)

    def set_payload(self, collection: str, where: Where, payload: dict[str, Any]) -> None:
        with self._unavailable_as_error():
            self.client.set_payload(collection, payload=payload, points=to_filter(where), wait=True)  # type: ignore[arg-type]

    def delete(self, collection: str, where: Where) -> None:
        selector = models.FilterSelector(filter=to_filter(where))  # type: ignore[arg-type]
        with self._unavailable_as_error():
            self.client.delete(collection, points_selector=selector, wait=True)

    def count(self, collection: str, where: Where | None = None) -> int:
        with self._unavailable_as_error():
            return int(self.client.count(collection, count_filter=to_filter(where), exact=True).count)

    def search_dense(
        self, collection: str, vector: Sequence[float], where: Where, limit: int, with_payload: bool = True
    ) -> list[Hit]:
        return self._nearest(collection, list(vector), DENSE, where, limit, with_payload)

    def search_sparse(
        self, collection: str, vector: Sparse, where: Where, limit: int, with_payload: bool = True
    ) -> list[Hit]:
        return self._nearest(collection, _sparse(vector), SPARSE, where, limit, with_payload)

    def _nearest(
        self, collection: str, query: Any, using: str, where: Where, limit: int, with_payload: bool
    ) -> list[Hit]:
        with self._unavailable_as_error():
            res = self.client.query_points(
                collection,
                query=query,
                using=using,
                query_filter=to_filter(where),
                limit=limit,
                with_payload=with_payload,
            )
        return hits_of(res.points)

    def search_hybrid(
        self,
        collection: str,
        dense: Sequence[float],
        sparse: Sparse,
        where: Where,
        limit: int,
        prefetch: int = 100,
        rrf_k: int = 60,
    ) -> list[Hit]:
        flt = to_filter(where)
        with self._unavailable_as_error():
            res = self.client.query_points(
                collection,
                prefetch=[
                    models.Prefetch(query=list(dense), using=DENSE, filter=flt, limit=prefetch),
                    models.Prefetch(query=_sparse(sparse), using=SPARSE, filter=flt, limit=prefetch),
                ],
                query=models.RrfQuery(rrf=models.Rrf(k=rrf_k)),
                query_filter=flt,
                limit=limit,
                with_payload=True,
            )
        return hits_of(res.points)

    def scroll(
        self,
        collection: str,
        where: Where,
        limit: int = 256,
        offset: str | None = None,
        with_sparse: bool = False,
        with_dense: bool = False,
    ) -> tuple[list[Hit], str | None]:
        with self._unavailable_as_error():
            records, nxt = self.client.scroll(
                collection,
                scroll_filter=to_filter(where),
                limit=limit,
                offset=offset,
                with_payload=True,
                with_vectors=vector_names(with_sparse, with_dense),
            )
        hits = hits_of(records, with_sparse or with_dense)
        return hits, (str(nxt) if nxt is not None else None)

    def retrieve(self, collection: str, ids: Sequence[str], with_sparse: bool = False) -> list[Hit]:
        if not ids:
            return []
        with self._unavailable_as_error():
            records = self.client.retrieve(
                collection, list(ids), with_payload=True, with_vectors=[SPARSE] if with_sparse else False
            )
        return hits_of(records, with_sparse)

    def drop_collection(self, collection: str) -> None:
        with self._unavailable_as_error():
            if self.client.collection_exists(collection):
                self.client.delete_collection(collection)
        self._known.discard(collection)

    def term_lists(self, collection: str, where: Where) -> list[tuple[list[int], int]]:
        out: list[tuple[list[int], int]] = []
        offset: Any = None
        while True:
            with self._unavailable_as_error():
                records, offset = self.client.scroll(
                    collection,
                    scroll_filter=to_filter(where),
                    limit=256,
                    offset=offset,
                    with_payload=[BM25_LEN],
                    with_vectors=[SPARSE],
                )
            for r in records:
                vec = (r.vector or {}).get(SPARSE) if isinstance(r.vector, dict) else None
                ids = list(vec.indices) if isinstance(vec, models.SparseVector) else []
                out.append((ids, int((r.payload or {}).get(BM25_LEN, 0))))
            if offset is None:
                return out

    def close(self) -> None:
        for client in self.clients:
            client.close()
