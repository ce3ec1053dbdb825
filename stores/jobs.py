"""Job state in Redis: what the CLI and the API read while and after a batch runs.

A job is one batch of files. Its record holds status and counters; one hash field per file holds
the outcome (ingested / unchanged / failed with code, message and the run to open in the UI).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from contracts.batch import FileOutcome
from stores.keys import JOBS_INDEX, job_files_key, job_key

COUNTERS = ("total", "done", "ingested", "unchanged", "failed", "chunks", "duplicates")


@dataclass
class Job:
    job_id: str
    tenant: str
    status: str
    workflow_id: str
    created_at: float
    updated_at: float
    counters: dict[str, int] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class JobStore:
    def __init__(self, client: redis.Redis) -> None:
        self.r = client

    def create(self, job_id: str, tenant: str, groups: Sequence[str], workflow_id: str, total: int) -> None:
        now = time.time()
        mapping: dict[str, str | int | float] = {
            "tenant": tenant,
            "status": "running",
            "workflow_id": workflow_id,
            "created_at": now,
            "updated_at": now,
            "groups": json.dumps(list(groups)),
        }
        mapping.update({c: 0 for c in COUNTERS})
        mapping["total"] = total
        # The record, then the index (a job's keys and the index lie in different cluster slots):
        # every indexed job has a record.
        self.r.hset(job_key(job_id), mapping=mapping)  # type: ignore[arg-type]  # redis' Mapping is invariant
        self.r.zadd(JOBS_INDEX, {job_id: now})

    def record(self, job_id: str, outcomes: Sequence[FileOutcome], counters: dict[str, int], status: str) -> None:
        """Idempotent: outcomes are keyed by source and counters are absolute, not increments."""
        pipe = self.r.pipeline()
        if outcomes:
            pipe.hset(job_files_key(job_id), mapping={o.source: json.dumps(asdict(o)) for o in outcomes})
        state: dict[str, str | int | float] = {"status": status, "updated_at": time.time()}
        state.update(counters)
        pipe.hset(job_key(job_id), mapping=state)  # type: ignore[arg-type]
        pipe.execute()

    def get(self, job_id: str) -> Job | None:
        raw: dict[str, str] = self.r.hgetall(job_key(job_id))  # type: ignore[assignment]  # a decoding client
        if not raw:
            return None
        return Job(
            job_id=job_id,
            tenant=raw["tenant"],
            status=raw["status"],
            workflow_id=raw["workflow_id"],
            created_at=float(raw["created_at"]),
            updated_at=float(raw["updated_at"]),
            counters={c: int(raw.get(c, 0)) for c in COUNTERS},
            groups=json.loads(raw.get("groups", "[]")),
        )

    def files(self, job_id: str, status: str | None = None) -> list[FileOutcome]:
        out = [FileOutcome(**json.loads(v)) for v in self.r.hvals(job_files_key(job_id))]
        out = [o for o in out if status is None or o.status == status]
        return sorted(out, key=lambda o: o.source)

    def recent(self, limit: int = 20, tenant: str | None = None) -> list[Job]:
        """The newest jobs (of one tenant, when given: scans back until it has `limit` of them)."""
        out: list[Job] = []
        start, page = 0, max(limit, 100)
        while len(out) < limit:
            ids: list[str] = self.r.zrevrange(JOBS_INDEX, start, start + page - 1)  # type: ignore[assignment]
            if not ids:
                break
            jobs = (j for j in (self.get(i) for i in ids) if j is not None)
            out.extend(j for j in jobs if tenant is None or j.tenant == tenant)
            start += page
        return out[:limit]

    def erase(self, tenant: str) -> list[str]:
        """Delete every job of the tenant (records, file outcomes, index entries); returns their ids."""
        mine = self._tenant_jobs(tenant)
        for start in range(0, len(mine), 500):
            part = mine[start : start + 500]
            # Out of the index first, then deleted: each job's two keys share its slot.
            self.r.zrem(JOBS_INDEX, *part)
            pipe = self.r.pipeline(transaction=False)
            for job_id in part:  # a key a command: a cluster pipeline sends each to its slot's node
                pipe.delete(job_key(job_id))
                pipe.delete(job_files_key(job_id))
            pipe.execute()
        return mine

    def forget_document(self, tenant: str, doc_id: str) -> int:
        """Drop a deleted document's file outcomes from the tenant's jobs (its name and id were
        in them); returns how many were dropped."""
        dropped = 0
        for job_id in self._tenant_jobs(tenant):
            files: dict[str, str] = self.r.hgetall(job_files_key(job_id))  # type: ignore[assignment]
            gone = [source for source, raw in files.items() if json.loads(raw).get("doc_id") == doc_id]
            if gone:
                dropped += int(self.r.hdel(job_files_key(job_id), *gone))
        return dropped

    def _tenant_jobs(self, tenant: str) -> list[str]:
        ids: list[str] = self.r.zrange(JOBS_INDEX, 0, -1)  # type: ignore[assignment]  # a decoding client
        pipe = self.r.pipeline(transaction=False)  # reads only, of keys in many slots
        for job_id in ids:
            pipe.hget(job_key(job_id), "tenant")
        return [job_id for job_id, owner in zip(ids, pipe.execute(), strict=True) if owner == tenant]
