"""The semantic answer cache: a paraphrase of a question answered before, in the same scope.

Each tenant's cached questions are points in a collection beside its index (`<collection>-cache`,
one per encoder, so a question is compared in the space its embedding lives in), with the scope
digest, the generation and the (redacted) question as payload. A lookup takes the question's
embedding, which retrieval then reuses (it is computed once per request), finds the nearest
cached questions of the same scope and generation, and serves the first one the guard agrees
with (`caches.guard`: no negation flip, the same numbers, names and kind of question, and the
fitted score) whose entry still stands (`caches.entries`: cited versions published and readable).
A hit says so on the answer (the question it matched is another caller's and is not shown), so a
client can re-ask without it.

Points of older generations are unreachable (the lookup filters on the current one), and each
point carries the time its entry expires: both kinds are removed when the tenant next stores an
entry, so the points live no longer than the entries in Redis (a point whose entry is gone is a
miss) and a tenant holds at most what it stored within one cache TTL.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from caches.entries import Entries, Hit, entry_digest
from caches.guard import Guard
from caches.question import facts
from encoders.sparse import Sparse
from index.active import ActiveIndex, Indexes
from keel.errors import KeelError
from vectorstore.base import ChunkPoint, Cond, Where

log = logging.getLogger("keel.cache")
NEAREST = 3  # cached questions the guard looks at, nearest first
NEVER = 1e18  # a point with no TTL (payloads are JSON: no infinity)
_NAMESPACE = uuid.UUID("6f1d1f55-2c8e-4c57-9e3d-3a3c0e5a6b10")


@dataclass(frozen=True, kw_only=True)
class SemanticHit:
    hit: Hit
    question: str  # the cached question it matched
    similarity: float


class SemanticCache:
    def __init__(self, indexes: Indexes, entries: Entries, guard: Guard, ttl_s: float = 0.0) -> None:
        self.ttl_s = ttl_s  # a point lives as long as its entry (0: until the next generation)
        self.indexes = indexes
        self.store = indexes.store
        self.entries = entries
        self.guard = guard

    def collection(self, index: ActiveIndex) -> str:
        name = f"{index.collection}-cache"
        self.store.ensure_collection(name, index.version.dim)
        return name

    def lookup(
        self,
        index: ActiveIndex,
        tenant: str,
        groups: Sequence[str],
        scope: str,
        generation: int,
        question: str,
        vector: np.ndarray,
    ) -> SemanticHit | None:
        """The first cached paraphrase the guard agrees with and whose entry stands (a miss is counted)."""
        where = _scope(tenant, scope, generation)
        try:
            near = self.store.search_dense(self.collection(index), vector.tolist(), where, NEAREST)
        except KeelError as exc:  # the cache is never why a query fails
            log.warning("semantic cache lookup skipped: %s", exc.message)
            return None
        near = [c for c in near if c.score >= self.guard.min_cosine]  # the rest could never pass
        asked = facts(question) if near else None
        for candidate in near:
            cached_question = str(candidate.payload.get("question", ""))
            assert asked is not None
            ok, _why = self.guard.decide(asked, facts(cached_question), candidate.score)
            if not ok:
                continue
            hit = self.entries.get(tenant, groups, entry_digest(scope, cached_question))
            if hit is not None:
                return SemanticHit(hit=hit, question=cached_question, similarity=candidate.score)
        self.entries.count(tenant, "semantic_miss")
        return None

    def remember(
        self,
        index: ActiveIndex,
        tenant: str,
        scope: str,
        generation: int,
        question: str,
        vector: np.ndarray,
        answer: dict[str, Any],
    ) -> bool:
        """Keep the answer and its question's point; older generations' points of the tenant go."""
        if not self.entries.put(tenant, entry_digest(scope, question), generation, question, answer):
            return False
        return self.add_point(index, tenant, scope, generation, question, vector)

    def add_point(
        self, index: ActiveIndex, tenant: str, scope: str, generation: int, question: str, vector: np.ndarray
    ) -> bool:
        """The question's point in the index's cache collection, its entry kept already (by
        `remember`, or by an API process that handed the point over: `caches.handover`)."""
        collection = self.collection(index)
        now = time.time()
        point = ChunkPoint(
            id=str(uuid.uuid5(_NAMESPACE, f"{tenant}/{scope}/{generation}/{question}")),
            dense=vector.tolist(),
            sparse=Sparse([], []),
            payload={
                "tenant": tenant,
                "scope": scope,
                "generation": generation,
                "question": question,
                "expires_at": now + self.ttl_s if self.ttl_s else NEVER,
            },
        )
        try:
            self.store.upsert(collection, [point])
            mine = Cond("tenant", value=tenant)
            self.store.delete(collection, Where(must=(mine, Cond("generation", lt=generation))))
            self.store.delete(collection, Where(must=(mine, Cond("expires_at", lt=now))))
        except KeelError as exc:
            log.warning("semantic cache store skipped: %s", exc.message)
            return False
        return True

    def purge(self, tenant: str) -> None:
        """Every cached question of the tenant, in every encoder's cache collection it has."""
        for index in self.indexes.targets(tenant):
            self.store.delete(self.collection(index), Where(must=(Cond("tenant", value=tenant),)))


def _scope(tenant: str, scope: str, generation: int) -> Where:
    return Where(must=(Cond("tenant", value=tenant), Cond("scope", value=scope), Cond("generation", value=generation)))


def semantic_cache(deps: Any) -> SemanticCache:
    """The layer over a process's indexes and Redis (a `pipelines.deps.Deps`), with the shipped guard."""
    s = deps.settings
    entries = Entries(deps.redis, "semantic", ttl_s=s.cache_ttl_s, max_entries=s.cache_max_entries)
    return SemanticCache(deps.indexes, entries, Guard.load(), ttl_s=s.cache_ttl_s)
