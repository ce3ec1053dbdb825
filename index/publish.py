"""Publishing a document version: it becomes the visible one and the previous one retires.

Readers see points with visible_from <= G < visible_until, where G is the tenant's generation
(`index.visibility`). Under a per-tenant lock: new points get visible_from = G+1, older versions
get visible_until = G+1, then G becomes G+1 in one Redis transaction with the document record.
Before the bump readers see only the old version; after it, only the new one. Retired versions
are deleted once no in-flight read can still be using them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from contracts.ingest import DocumentRef
from index.active import Indexes
from keel.config import Settings
from keel.tenancy import check_replacement
from stores import term_stats
from stores.keys import doc_key, generation_key, publish_lock_key, tenant_docs_key
from stores.term_stats import COUNTED_FIELD, Contribution
from vectorstore.base import Cond, Where

# (retiring version, the generation at which it disappears): called under the publish lock,
# before the flip, so whatever it stores becomes visible in the same step. It returns what the
# points it stored add to the tenant's BM25 statistics, counted in the same transaction.
BeforeFlip = Callable[[str, int], Contribution]


@dataclass(frozen=True, kw_only=True)
class Published:
    generation: int
    already_published: bool = False


@dataclass(frozen=True, kw_only=True)
class Withdrawn:
    version: str  # the version that was published ("" when none was)
    points: int  # points deleted, of every version but the one in flight


class Publisher:
    def __init__(self, client: redis.Redis, indexes: Indexes, settings: Settings) -> None:
        self.r = client
        self.indexes = indexes
        self.settings = settings  # read per call: retire_grace_seconds can be changed at run time

    def publish(
        self,
        doc: DocumentRef,
        doc_id: str,
        record: dict[str, Any],
        run_id: str = "",
        before_flip: BeforeFlip | None = None,
    ) -> Published:
        """A retry after a crash at any point redoes the same writes or finds the work done; work
        done by the same workflow run (`run_id`) is reported as this publish's, not a repeat's."""
        r = self.r
        key = doc_key(doc.tenant, doc_id)
        with r.lock(publish_lock_key(doc.tenant), timeout=120, blocking_timeout=120):
            # Read under the lock: a migration registers its side index under the same lock, so
            # every index that must see this flip is in the list.
            targets = [i.collection for i in self.indexes.targets(doc.tenant)]
            collection = targets[0]
            current, published_run, published_gen, counted, groups = r.hmget(
                key, ["version", "published_run", "generation", COUNTED_FIELD, "groups"]
            )
            gen = int(r.get(generation_key(doc.tenant)) or 0)
            if current is not None and current != doc.version and groups and doc.writer_groups is not None:
                # Checked again here, where the flip happens: the version published while this
                # one was staged may be one this writer may not replace (`begin` saw an older one).
                check_replacement(json.loads(str(groups)), doc.groups, doc.writer_groups)
            if current == doc.version:
                if run_id and published_run == run_id:
                    return Published(generation=int(published_gen or gen))
                return Published(generation=gen, already_published=True)
            nxt = gen + 1
            rehomed = Contribution()
            if current is not None and before_flip is not None:
                rehomed = before_flip(str(current), nxt)
            store = self.indexes.store
            mine = Where(must=(Cond("tenant", value=doc.tenant), Cond("doc_id", value=doc_id)))
            # BM25 statistics: this version's chunks in, the replaced version's out (read from
            # the points themselves, so what comes out is exactly what went in).
            added = self.contribution(collection, mine, doc.version)
            removed = self.contribution(collection, mine, str(counted)) if counted else Contribution()
            older = Where(
                must=(*mine.must, Cond("visible_until", gt=nxt)), must_not=(Cond("version", value=doc.version),)
            )
            retired_at = time.time()
            for target in targets:
                store.set_payload(target, mine.and_(Cond("version", value=doc.version)), {"visible_from": nxt})
                store.set_payload(target, older, {"visible_until": nxt, "retired_at": retired_at})
            fields = {k: json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else v for k, v in record.items()}
            fields.update(
                version=doc.version,
                staging="",
                source=doc.source,
                published_at=time.time(),
                generation=nxt,
                published_run=run_id,
            )
            fields[COUNTED_FIELD] = doc.version
            pipe = r.pipeline(transaction=True)
            pipe.set(generation_key(doc.tenant), nxt)
            pipe.hset(key, mapping=fields)  # type: ignore[arg-type]  # redis' Mapping is invariant
            pipe.sadd(tenant_docs_key(doc.tenant), doc_id)
            term_stats.apply(pipe, doc.tenant, added, 1)
            term_stats.apply(pipe, doc.tenant, rehomed, 1)
            term_stats.apply(pipe, doc.tenant, removed, -1)
            pipe.execute()
        self.collect_retired(doc.tenant)
        return Published(generation=nxt)

    def withdraw(self, tenant: str, doc_id: str, in_flight: str, before_flip: BeforeFlip | None = None) -> Withdrawn:
        """Take a document out of the index for good (a deletion), the reverse of `publish`.

        Under the publish lock: the record's `version` becomes `deleting` (so the dedupe registry
        stops counting it as published), its points stop being visible at G+1 (with whatever
        `before_flip` stores for that generation), G becomes G+1, and the points are deleted,
        there and then rather than after the retire grace, since a deletion must not linger.
        Points of `in_flight` (an ingest running now) are left to it. A retry finds the record
        already marked and redoes the rest.
        """
        r = self.r
        key = doc_key(tenant, doc_id)
        with r.lock(publish_lock_key(tenant), timeout=120, blocking_timeout=120):
            targets = [i.collection for i in self.indexes.targets(tenant)]
            collection = targets[0]
            published, deleting, counted = r.hmget(key, ["version", "deleting", COUNTED_FIELD])
            version = str(published or deleting or "")
            mine = Where(
                must=(Cond("tenant", value=tenant), Cond("doc_id", value=doc_id)),
                must_not=(Cond("version", value=in_flight),) if in_flight else (),
            )
            # Its chunks leave the BM25 statistics in the step that marks the record (once: a
            # retry finds nothing counted), while the points are still there to say what they were.
            removed = self.contribution(collection, mine, str(counted)) if counted else Contribution()
            if published or counted:
                pipe = r.pipeline(transaction=True)
                if published:
                    pipe.hset(key, "deleting", str(published))
                    pipe.hdel(key, "version")
                pipe.hdel(key, COUNTED_FIELD)
                term_stats.apply(pipe, tenant, removed, -1)
                pipe.execute()
            nxt = int(r.get(generation_key(tenant)) or 0) + 1
            if version and before_flip is not None:
                rehomed = before_flip(version, nxt)
                if rehomed.chunks:
                    pipe = r.pipeline(transaction=True)
                    term_stats.apply(pipe, tenant, rehomed, 1)
                    pipe.execute()
            store = self.indexes.store
            for target in targets:
                store.set_payload(target, mine.and_(Cond("visible_until", gt=nxt)), {"visible_until": nxt})
            r.set(generation_key(tenant), nxt)
            points = store.count(collection, mine)
            for target in targets:
                store.delete(target, mine)
        return Withdrawn(version=version, points=points)

    def contribution(self, collection: str, doc: Where, version: str) -> Contribution:
        """What a version's stored chunks add to the tenant's BM25 statistics."""
        return Contribution.of(self.indexes.store.term_lists(collection, doc.and_(Cond("version", value=version))))

    def erase_points(self, tenant: str) -> int:
        """Delete every point of the tenant (an erasure); returns how many there were."""
        everything = Where(must=(Cond("tenant", value=tenant),))
        with self.r.lock(publish_lock_key(tenant), timeout=120, blocking_timeout=120):
            targets = self.indexes.targets(tenant)
            points = self.indexes.store.count(targets[0].collection, everything)
            for index in targets:
                self.indexes.store.delete(index.collection, everything)
        return points

    def collect_retired(self, tenant: str) -> None:
        """Delete versions retired longer ago than any in-flight read can still be using them."""
        cutoff = time.time() - self.settings.retire_grace_seconds
        where = Where(must=(Cond("tenant", value=tenant), Cond("retired_at", lt=cutoff)))
        for index in self.indexes.targets(tenant):
            self.indexes.store.delete(index.collection, where)
