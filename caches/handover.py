"""Semantic-cache points handed from an API process to the worker that holds the index.

The embedded Qdrant opens in one process, the worker's. An API process of its own keeps a whole
answer's entry in Redis itself (`HandOver.remember`, as `SemanticCache.remember` does) and hands
the question's point (tenant, scope, generation, redacted question, vector, the index's embedding
version) to the worker through a capped Redis list; the worker's `Keeper` thread adds it to that
index's cache collection. Until it has, a paraphrase is not found yet: a miss, never a wrong hit.
A point whose tenant has moved to another generation (a publish, a deletion, an erasure) by then
is dropped, so nothing is added for data that is gone.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import redis

from caches.entries import Entries, entry_digest
from caches.semantic import SemanticCache
from index.active import Indexes
from index.catalog import Catalog
from keel.errors import KeelError
from stores.keys import SEMANTIC_PENDING

log = logging.getLogger("keel.cache")

MAX_PENDING = 10_000  # past it the oldest points go: the cache is an optimisation, Redis memory is not


@dataclass(kw_only=True)
class PendingPoint:
    tenant: str
    embedding_version: str
    scope: str
    generation: int
    question: str
    vector: list[float]


class HandOver:
    """The semantic cache's writer in a process without the index."""

    def __init__(self, r: redis.Redis, entries: Entries, queue: str = SEMANTIC_PENDING) -> None:
        self.r = r
        self.entries = entries
        self.queue = queue

    def remember(
        self,
        embedding_version: str,
        tenant: str,
        scope: str,
        generation: int,
        question: str,
        vector: np.ndarray,
        answer: dict[str, Any],
    ) -> bool:
        if not self.entries.put(tenant, entry_digest(scope, question), generation, question, answer):
            return False
        point = PendingPoint(
            tenant=tenant,
            embedding_version=embedding_version,
            scope=scope,
            generation=generation,
            question=question,
            vector=[float(x) for x in vector],
        )
        pipe = self.r.pipeline(transaction=False)
        pipe.lpush(self.queue, json.dumps(asdict(point)))
        pipe.ltrim(self.queue, 0, MAX_PENDING - 1)
        pipe.execute()
        return True


class Keeper:
    """The worker's side: a thread that adds the handed-over points to the cache collections."""

    def __init__(
        self, r: redis.Redis, semantic: SemanticCache, indexes: Indexes, queue: str = SEMANTIC_PENDING
    ) -> None:
        self.r = r
        self.queue = queue
        self.semantic = semantic
        self.indexes = indexes
        self.catalog = Catalog(r)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="keel-cache-keeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def keep_next(self, wait_s: float = 1.0) -> bool:
        """Add the oldest pending point; False when none came within `wait_s` or it was dropped."""
        popped = self.r.brpop([self.queue], timeout=wait_s)
        if popped is None:
            return False
        p = PendingPoint(**json.loads(popped[1]))
        if self.catalog.generation(p.tenant) != p.generation:  # moved on (or erased): its answer is gone
            return False
        index = self.indexes.by_version(p.tenant, p.embedding_version)
        return self.semantic.add_point(
            index, p.tenant, p.scope, p.generation, p.question, np.asarray(p.vector, dtype=np.float32)
        )

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.keep_next()
            except (redis.RedisError, KeelError, ValueError, TypeError) as exc:  # the next one may go
                log.warning("a semantic cache point was not kept: %s", exc)
                time.sleep(1.0)
