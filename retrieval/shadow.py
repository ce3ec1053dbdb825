"""Shadow traffic: a share of a tenant's live queries also runs against its finished side index.

Off the user's path: the query's retrieval hands its result over and returns; one background
thread retrieves the same question from the side index, ranks both the way the query's
re-scorer does (when it reads scores only; a text model would double the query's cost, so
then the retrieval orders are compared), and adds overlap@10 and Kendall's tau to the
migration's record. When the thread is behind, queries are skipped rather than queued.

Chunks are compared by what they are (document, version, chunk), not by point id, since each
index names its points by its own embedding version.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor

from index.active import ActiveIndex, Indexes
from index.lifecycle import Lifecycle
from keel.config import Settings
from retrieval.rerank import Reranker
from retrieval.retriever import HybridRetriever, Retrieved
from vectorstore.base import Where


def overlap_at(a: Sequence[Hashable], b: Sequence[Hashable], k: int = 10) -> float:
    """|top-k of a ∩ top-k of b| / k (1.0: the same k results, in any order)."""
    if k <= 0:
        return 0.0
    return len(set(a[:k]) & set(b[:k])) / k


def kendall_tau(a: Sequence[Hashable], b: Sequence[Hashable]) -> float | None:
    """Kendall's tau over the items both rankings hold: 1.0 same order, -1.0 reversed; None when
    fewer than two are shared (no order to compare)."""
    rank_b = {item: i for i, item in enumerate(b)}
    shared = [rank_b[item] for item in a if item in rank_b]
    n = len(shared)
    if n < 2:
        return None
    concordant = sum(1 for i in range(n) for j in range(i + 1, n) if shared[i] < shared[j])
    pairs = n * (n - 1) // 2
    return (2 * concordant - pairs) / pairs


log = logging.getLogger("keel.shadow")

MAX_PENDING = 4


class ShadowQueries:
    def __init__(
        self, settings: Settings, indexes: Indexes, lifecycle: Lifecycle, retriever: HybridRetriever, reranker: Reranker
    ) -> None:
        self.settings = settings  # read per query: the share can change at run time
        self.indexes = indexes
        self.lifecycle = lifecycle
        self.retriever = retriever
        self.reranker = reranker
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="keel-shadow")
        self._pending = 0
        self._lock = threading.Lock()
        self._random = random.Random()

    def offer(self, tenant: str, question: str, mode: str, where: Where, found: Retrieved) -> bool:
        """Maybe run this query against the tenant's side index too. True when it was taken."""
        share = self.settings.shadow_share
        if share <= 0 or self._random.random() >= share:
            return False
        shadow = self.indexes.shadow(tenant)
        if shadow is None:
            return False
        with self._lock:
            if self._pending >= MAX_PENDING:
                return False
            self._pending += 1
        migration_id, side = shadow
        self._pool.submit(self._compare, tenant, migration_id, side, question, mode, where, found)
        return True

    def _compare(
        self,
        tenant: str,
        migration_id: str,
        side: ActiveIndex,
        question: str,
        mode: str,
        where: Where,
        found: Retrieved,
    ) -> None:
        try:
            s = self.settings
            other = self.retriever.retrieve(
                side, tenant, question, where, mode, s.retrieve_candidates, s.retrieve_prefetch
            )
            a, b = self._order(question, found), self._order(question, other)
            self.lifecycle.add_shadow(tenant, migration_id, overlap_at(a, b, 10), kendall_tau(a[:10], b[:10]))
        except Exception as exc:  # a shadow query never fails anything but itself
            log.warning("shadow query for tenant %s skipped: %s", tenant, exc)
        finally:
            with self._lock:
                self._pending -= 1

    def _order(self, question: str, found: Retrieved) -> list[tuple[str, str, int]]:
        scored = found.scored
        if not self.reranker.reads_text:
            scored = self.reranker.rerank(question, scored, {}, float("inf"))
        keys = []
        for sc in scored:
            c = found.candidates.get(sc.point_id)
            if c is not None:
                keys.append((c.doc_id, c.version, c.chunk_index))
        return keys

    def wait_idle(self, timeout_s: float = 10.0) -> None:
        """For tests and benchmarks: until the queued shadow queries are done."""
        self._pool.submit(lambda: None).result(timeout=timeout_s)
