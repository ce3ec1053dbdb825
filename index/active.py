"""Which index a tenant reads and writes: a collection and the encoder whose vectors fill it.

Every reader (retrieval, context windows) and writer (ingest, publish) asks `Indexes.active`,
so no module hard-codes a collection or an embedder. Today every tenant has the default index
(`Settings.collection`, the configured encoder); an embedding migration gives a tenant another
one by changing what `active` answers, nothing else. Encoders are loaded once per process and
shared by every index that uses them (`encoders.registry`).
"""

from __future__ import annotations

from dataclasses import dataclass

from encoders.dense import Embedder, EmbeddingVersion
from vectorstore.base import VectorStore


@dataclass(frozen=True, kw_only=True)
class ActiveIndex:
    collection: str
    embedder: Embedder
    version: EmbeddingVersion  # stored on every point of the collection


class Indexes:
    def __init__(self, store: VectorStore, default: ActiveIndex) -> None:
        self.store = store
        self.default = default
        self._ready: set[str] = set()

    def active(self, tenant: str) -> ActiveIndex:
        """The index the tenant reads and writes now (its encoder, version and collection name)."""
        return self.default

    def open(self, tenant: str) -> ActiveIndex:
        """The tenant's index, its collection created on first use: a worker starts even while a
        Qdrant server is down, and the steps that need it fail with `vector_store_unavailable`."""
        index = self.active(tenant)
        if index.collection not in self._ready:
            self.store.ensure_collection(index.collection, index.version.dim)
            self._ready.add(index.collection)
        return index
