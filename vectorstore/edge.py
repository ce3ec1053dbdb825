"""Qdrant Edge backend: Qdrant's engine in-process, one shard directory per collection.

The shard locks its folder to one process, so only the worker opens it. Writes go through the
shard's write-ahead log, so a worker killed mid-batch recovers every acknowledged upsert on load.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from encoders.sparse import Sparse
from keel.errors import IndexOutdated
from vectorstore.base import (
    BM25_LEN,
    DENSE,
    FLOAT_INDEXES,
    INTEGER_INDEXES,
    KEYWORD_INDEXES,
    LEGACY_SPARSE,
    SPARSE,
    ChunkPoint,
    Cond,
    Hit,
    Where,
    hits_of,
    vector_names,
)


def _cond(c: Cond) -> qe.FieldCondition:
    if c.value is not None:
        return qe.FieldCondition(c.key, match=qe.MatchValue(c.value))
    if c.any is not None:
        return qe.FieldCondition(c.key, match=qe.MatchAny(list(c.any)))
    return qe.FieldCondition(c.key, range=qe.RangeFloat(gte=c.gte, gt=c.gt, lte=c.lte, lt=c.lt))


def to_filter(where: Where | None) -> qe.Filter | None:
    if where is None or (not where.must and not where.must_not):
        return None
    return qe.Filter(
        must=[_cond(c) for c in where.must] or None,
        must_not=[_cond(c) for c in where.must_not] or None,
    )


class EdgeStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._shards: dict[str, qe.EdgeShard] = {}
        self._lock = threading.RLock()

    def _shard(self, collection: str) -> qe.EdgeShard:
        shard = self._shards.get(collection)
        if shard is None:
            raise KeyError(f"collection {collection!r} is not open; call ensure_collection first")
        return shard

    def ensure_collection(self, collection: str, dim: int) -> None:
        with self._lock:
            if collection in self._shards:
                return
            path = self.root / collection
            config = qe.EdgeConfig(
                vectors={DENSE: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine)},
                sparse_vectors={SPARSE: qe.EdgeSparseVectorParams()},
            )
            if (path / "edge_config.json").exists():
                saved = json.loads((path / "edge_config.json").read_text())
                if SPARSE not in saved.get("sparse_vectors", {}) and LEGACY_SPARSE in saved.get("sparse_vectors", {}):
                    raise IndexOutdated(collection)
                shard = qe.EdgeShard.load(str(path))
            else:
                path.mkdir(parents=True, exist_ok=True)
                shard = qe.EdgeShard.create(str(path), config)
                for key in KEYWORD_INDEXES:
                    params = qe.KeywordIndexParams(is_tenant=True) if key == "tenant" else qe.KeywordIndexParams()
                    shard.update(qe.UpdateOperation.create_field_index(key, params))
                for key in INTEGER_INDEXES:
                    shard.update(
                        qe.UpdateOperation.create_field_index(key, qe.IntegerIndexParams(lookup=True, range=True))
                    )
                for key in FLOAT_INDEXES:
                    shard.update(qe.UpdateOperation.create_field_index(key, qe.PayloadSchemaType.Float))
            self._shards[collection] = shard

    def upsert(self, collection: str, points: Sequence[ChunkPoint]) -> None:
        if not points:
            return
        ops = [
            qe.Point(
                p.id,
                {DENSE: list(p.dense), SPARSE: qe.SparseVector(p.sparse.indices, p.sparse.values)},
                p.payload,
            )
            for p in points
        ]
        with self._lock:
            self._shard(collection).update(qe.UpdateOperation.upsert_points(ops))

    def set_payload(self, collection: str, where: Where, payload: dict[str, Any]) -> None:
        with self._lock:
            self._shard(collection).update(
                qe.UpdateOperation.set_payload_by_filter(to_filter(where) or qe.Filter(), payload)
            )

    def delete(self, collection: str, where: Where) -> None:
        with self._lock:
            self._shard(collection).update(qe.UpdateOperation.delete_points_by_filter(to_filter(where) or qe.Filter()))

    def count(self, collection: str, where: Where | None = None) -> int:
        return int(self._shard(collection).count(qe.CountRequest(exact=True, filter=to_filter(where))))

    def search_dense(
        self, collection: str, vector: Sequence[float], where: Where, limit: int, with_payload: bool = True
    ) -> list[Hit]:
        return self._nearest(collection, list(vector), DENSE, where, limit, with_payload)

    def search_sparse(
        self, collection: str, vector: Sparse, where: Where, limit: int, with_payload: bool = True
    ) -> list[Hit]:
        return self._nearest(
            collection, qe.SparseVector(vector.indices, vector.values), SPARSE, where, limit, with_payload
        )

    def _nearest(
        self, collection: str, query: Any, using: str, where: Where, limit: int, with_payload: bool
    ) -> list[Hit]:
        req = qe.QueryRequest(
            limit=limit, query=qe.Query.Nearest(query, using=using), filter=to_filter(where), with_payload=with_payload
        )
        return hits_of(self._shard(collection).query(req))

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
        req = qe.QueryRequest(
            limit=limit,
            prefetches=[
                qe.Prefetch(limit=prefetch, query=qe.Query.Nearest(list(dense), using=DENSE), filter=flt),
                qe.Prefetch(
                    limit=prefetch,
                    query=qe.Query.Nearest(qe.SparseVector(sparse.indices, sparse.values), using=SPARSE),
                    filter=flt,
                ),
            ],
            query=qe.Fusion.Rrf(k=rrf_k),  # type: ignore[arg-type]  # the stub omits the nested class
            filter=flt,
            with_payload=True,
        )
        return hits_of(self._shard(collection).query(req))

    def scroll(
        self,
        collection: str,
        where: Where,
        limit: int = 256,
        offset: str | None = None,
        with_sparse: bool = False,
        with_dense: bool = False,
    ) -> tuple[list[Hit], str | None]:
        records, nxt = self._shard(collection).scroll(
            qe.ScrollRequest(
                offset=offset,
                limit=limit,
                filter=to_filter(where),
                with_payload=True,
                with_vector=vector_names(with_sparse, with_dense),
            )
        )
        hits = hits_of(records, with_sparse or with_dense)
        return hits, (str(nxt) if nxt is not None else None)

    def retrieve(self, collection: str, ids: Sequence[str], with_sparse: bool = False) -> list[Hit]:
        if not ids:
            return []
        records = self._shard(collection).retrieve(list(ids), True, [SPARSE] if with_sparse else False)
        return hits_of(records, with_sparse)

    def drop_collection(self, collection: str) -> None:
        with self._lock:
            shard = self._shards.pop(collection, None)
            if shard is not None:
                shard.close()
            path = self.root / collection
            if path.exists():
                shutil.rmtree(path)

    def term_lists(self, collection: str, where: Where) -> list[tuple[list[int], int]]:
        out: list[tuple[list[int], int]] = []
        offset = None
        while True:
            records, offset = self._shard(collection).scroll(
                qe.ScrollRequest(
                    offset=offset, limit=256, filter=to_filter(where), with_payload=[BM25_LEN], with_vector=[SPARSE]
                )
            )
            for r in records:
                vec = r.vector.get(SPARSE) if isinstance(r.vector, dict) else None
                ids = list(vec.indices) if isinstance(vec, qe.SparseVector) else []
                out.append((ids, int((r.payload or {}).get(BM25_LEN, 0))))
            if offset is None:
                return out

    def close(self) -> None:
        with self._lock:
            for shard in self._shards.values():
                shard.flush()
                shard.close()
            self._shards.clear()
