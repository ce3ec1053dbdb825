"""An embedding migration's work: fill a side index from the active one, check it, empty one.

The side index is filled from the points already stored, never from the files: each point's
payload holds the redacted chunk text, title and section path the active encoder saw, and its
BM25 vector, so a backfill re-embeds exactly what is indexed (no parse, no redaction) and copies
the rest. A chunker change would need the documents chunked again from their parse, which is
not kept (`ingestion` keeps only the redacted chunks): it is an ingest, not a migration.

Writes that happen while a backfill runs reach both indexes (`Indexes.targets`); the backfill
copies each page under the tenant's publish lock with the payload read again inside it, so a
publish or a deletion between the scroll and the write is never undone by a stale copy.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from encoders.dense import embedding_text
from encoders.sparse import Sparse
from index.active import ActiveIndex
from keel import ids
from pipelines.deps import Deps
from stores.keys import TENANTS_KEY, index_key, publish_lock_key
from vectorstore.base import ChunkPoint, Cond, Hit, Where

# A point of the side index per (document, version, chunk): what identifies a chunk in both.
ChunkKey = tuple[str, str, int]


@dataclass(frozen=True, kw_only=True)
class Page:
    copied: int
    next_offset: str | None
    scanned: int


def chunk_key(payload: dict[str, object]) -> ChunkKey:
    return (str(payload["doc_id"]), str(payload["version"]), int(str(payload["chunk_index"])))


class Migrator:
    def __init__(self, deps: Deps) -> None:
        self.d = deps
        self.store = deps.store

    def tenant_points(self, tenant: str) -> Where:
        return Where(must=(Cond("tenant", value=tenant),))

    def count(self, index: ActiveIndex, tenant: str) -> int:
        return self.store.count(self.d.indexes.ensure(index).collection, self.tenant_points(tenant))

    # -- backfill ---------------------------------------------------------------------------
    def copy_page(self, tenant: str, source: ActiveIndex, target: ActiveIndex, offset: str | None, limit: int) -> Page:
        """Re-embed one page of the tenant's points into the side index. Ids are derived from the
        chunk and the target's embedding version, so a page done twice writes the same points."""
        self.d.indexes.ensure(target)
        hits, nxt = self.store.scroll(source.collection, self.tenant_points(tenant), limit, offset, with_sparse=True)
        return Page(copied=self.copy(tenant, source, target, hits), next_offset=nxt, scanned=len(hits))

    def copy(self, tenant: str, source: ActiveIndex, target: ActiveIndex, hits: Sequence[Hit]) -> int:
        if not hits:
            return 0
        vectors = target.embedder.embed(self.embedding_texts(hits))  # outside the lock: the slow part
        version = target.version
        with self.d.redis.lock(publish_lock_key(tenant), timeout=120, blocking_timeout=120):
            # The payload as it is now: a publish or a deletion since the scroll wins.
            fresh = {h.id: h for h in self.store.retrieve(source.collection, [h.id for h in hits])}
            points = []
            for hit, vector in zip(hits, vectors, strict=True):
                now = fresh.get(hit.id)
                if now is None:
                    continue  # deleted meanwhile: the deletion reached the side index too
                payload = {**now.payload, "embedding_version": version.key, "embedding": version.to_dict()}
                doc_id, doc_version, chunk = chunk_key(payload)
                points.append(
                    ChunkPoint(
                        id=ids.point_id(tenant, doc_id, doc_version, chunk, version.key),
                        dense=vector.tolist(),
                        sparse=hit.sparse or Sparse([], []),
                        payload=payload,
                    )
                )
            self.store.upsert(target.collection, points)
        return len(points)

    @staticmethod
    def embedding_texts(hits: Sequence[Hit]) -> list[str]:
        """What the encoder saw at ingest, rebuilt from each point's payload."""
        return [
            embedding_text(
                str(h.payload.get("title", "")), list(h.payload.get("section_path") or []), str(h.payload["text"])
            )
            for h in hits
        ]

    def reconcile(self, tenant: str, source: ActiveIndex, target: ActiveIndex) -> tuple[int, int]:
        """Make the side index hold exactly the active one's chunks, with the same visibility:
        copy what is missing or differs, delete what is extra. Under the publish lock, so nothing
        publishes in between. Returns (copied, deleted); (0, 0) when dual writes kept up."""
        self.d.indexes.ensure(target)
        with self.d.redis.lock(publish_lock_key(tenant), timeout=600, blocking_timeout=600):
            want = self._visibility(source, tenant)
            have = self._visibility(target, tenant)
        stale = [want[k][0] for k in want if k not in have or have[k][1:] != want[k][1:]]
        extra = [k for k in have if k not in want]
        copied = 0
        for start in range(0, len(stale), 256):
            copied += self.copy(
                tenant,
                source,
                target,
                self.store.retrieve(source.collection, stale[start : start + 256], with_sparse=True),
            )
        with self.d.redis.lock(publish_lock_key(tenant), timeout=120, blocking_timeout=120):
            for doc_id, version, chunk in extra:
                where = self.tenant_points(tenant).and_(
                    Cond("doc_id", value=doc_id), Cond("version", value=version), Cond("chunk_index", value=chunk)
                )
                if self._exists(source, where):
                    continue  # it arrived in the active index meanwhile, through both
                self.store.delete(target.collection, where)
        return copied, len(extra)

    def _exists(self, index: ActiveIndex, where: Where) -> bool:
        return self.store.count(index.collection, where) > 0

    def _visibility(self, index: ActiveIndex, tenant: str) -> dict[ChunkKey, tuple[str, int, int]]:
        """chunk -> (point id, visible_from, visible_until) over the tenant's points of one index."""
        out: dict[ChunkKey, tuple[str, int, int]] = {}
        offset: str | None = None
        while True:
            hits, offset = self.store.scroll(index.collection, self.tenant_points(tenant), 1024, offset)
            for h in hits:
                out[chunk_key(h.payload)] = (h.id, int(h.payload["visible_from"]), int(h.payload["visible_until"]))
            if offset is None:
                return out

    def disk_bytes(self, tenant: str, source: ActiveIndex, target: ActiveIndex, chunks: int) -> int:
        """What the side index will take: per chunk, its dense vector at the target's size, its BM25
        vector and payload as stored now (from a sample), and Qdrant's graph and index overhead."""
        hits, _ = self.store.scroll(source.collection, self.tenant_points(tenant), 64, None, with_sparse=True)
        if not hits:
            return 0
        payload = sum(len(json.dumps(h.payload)) for h in hits) / len(hits)
        sparse = sum(len(h.sparse.indices) if h.sparse else 0 for h in hits) / len(hits) * 8
        per_chunk = target.version.dim * 4 * 1.5 + sparse * 2 + payload * 1.2  # 1.5, 2: HNSW links, inverted index
        return int(per_chunk * chunks)

    # -- cleanup ----------------------------------------------------------------------------
    def drop_tenant(self, tenant: str, index: ActiveIndex) -> int:
        """Remove the tenant's points from an index it no longer uses; the collection goes too
        when nothing is left in it and no tenant's index names it."""
        index = self.d.indexes.ensure(index)
        points = self.store.count(index.collection, self.tenant_points(tenant))
        self.store.delete(index.collection, self.tenant_points(tenant))
        shared = index.collection == self.d.settings.collection
        if not shared and not self.store.count(index.collection) and not self._named_anywhere(index.name):
            self.store.drop_collection(index.collection)
            self.d.indexes.forget_collection(index.collection)
        return points

    def _named_anywhere(self, name: str) -> bool:
        r = self.d.redis
        pipe = r.pipeline(transaction=False)  # reads only, of every tenant's slot
        tenants = [str(t) for t in r.smembers(TENANTS_KEY)]
        for tenant in tenants:
            pipe.hmget(index_key(tenant), ["active", "side", "previous"])
        return any(name in fields for fields in pipe.execute())
