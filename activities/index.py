"""The index-lifecycle activities: one method per step of BackfillIndexWorkflow."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from temporalio import activity

from activities.errors import mapped
from activities.heartbeat import keep_alive
from contracts.index import (
    AWAITING,
    ENDED,
    FLIPPED,
    PREPARING,
    RETIRED,
    ROLLED_BACK,
    Backfilled,
    Ended,
    EndInput,
    Flipped,
    GateDecision,
    GateInput,
    MigrationInput,
    MigrationStep,
    Prepared,
    Reconciled,
    ShadowFigures,
)
from index.lifecycle import Lifecycle
from pipelines.deps import Deps
from pipelines.migrate import Migrator
from retrieval.golden import compare_indexes
from retrieval.rerank import Reranker

__all__ = ["IndexActivities"]


class IndexActivities:
    def __init__(self, deps: Deps, reranker: Reranker) -> None:
        self.d = deps
        self.lifecycle = Lifecycle(deps.redis, deps.indexes.catalog)
        self.migrator = Migrator(deps)
        self.reranker = reranker

    @activity.defn(name="index.prepare")
    @mapped
    def prepare(self, inp: MigrationInput) -> Prepared:
        """Register the side index (dual writes start here) and measure what the backfill faces."""
        info = activity.info()
        self.lifecycle.create(
            inp.tenant,
            inp.migration_id,
            {"tenant": inp.tenant, "target": inp.target, "state": PREPARING, "workflow_id": info.workflow_id},
        )
        state = self.lifecycle.begin(inp.tenant, inp.migration_id, inp.target)
        source, target = self.d.indexes.index(state.active), self.d.indexes.index(inp.target)
        chunks = self.migrator.count(source, inp.tenant)
        disk = self.migrator.disk_bytes(inp.tenant, source, target, chunks)
        self.lifecycle.note(
            inp.tenant,
            inp.migration_id,
            state="backfilling",
            source=source.name,
            source_version=source.version.key,
            target_version=target.version.key,
            chunks_total=chunks,
            chunks_done=0,
            disk_bytes=disk,
            retention_s=inp.retention_s,
            golden_queries=len(inp.golden),
        )
        return Prepared(
            source=source.name,
            source_version=source.version.key,
            target_version=target.version.key,
            chunks=chunks,
            disk_bytes=disk,
        )

    @activity.defn(name="index.backfill")
    @mapped
    def backfill(self, inp: MigrationStep) -> Backfilled:
        """Re-embed the tenant's chunks page by page. Each page's end is heartbeated, so a retry
        after a worker loss resumes from the last finished page (a page redone rewrites the same ids)."""
        source, target = self.d.indexes.index(inp.source), self.d.indexes.index(inp.target)
        details: tuple[Any, ...] = tuple(activity.info().heartbeat_details)
        offset, scanned, copied, seconds, finished = details[0] if details else (None, 0, 0, 0.0, False)
        if finished:  # the last attempt reported its final page
            return Backfilled(copied=copied, seconds=seconds, chunks_per_s=_rate(scanned, seconds))
        done = [(offset, scanned, copied, seconds, False)]  # the last finished page, re-sent while one runs
        while True:
            started = time.monotonic()
            with keep_alive(details=lambda: (done[0],)):  # a page may take longer than the heartbeat timeout
                page = self.migrator.copy_page(inp.tenant, source, target, offset, inp.page)
            scanned += page.scanned  # re-embedded; `copied` leaves out what was deleted meanwhile
            copied += page.copied
            seconds += time.monotonic() - started
            offset = page.next_offset
            done[0] = (offset, scanned, copied, seconds, offset is None)
            activity.heartbeat(done[0])
            rate = _rate(scanned, seconds)
            left = max(0, inp.chunks - scanned)
            self.lifecycle.note(
                inp.tenant,
                inp.migration_id,
                chunks_done=scanned,
                chunks_copied=copied,
                chunks_per_s=round(rate, 1),
                eta_s=round(left / rate, 1) if rate else None,
                backfill_attempts=activity.info().attempt,  # above 1: resumed after a worker loss
            )
            if offset is None:
                return Backfilled(copied=copied, seconds=round(seconds, 3), chunks_per_s=round(rate, 1))

    @activity.defn(name="index.reconcile")
    @mapped
    def reconcile(self, inp: MigrationStep) -> Reconciled:
        """Check the side index against the active one and mend any difference; then it is complete
        and shadow queries may start comparing the two."""
        source, target = self.d.indexes.index(inp.source), self.d.indexes.index(inp.target)
        with keep_alive():
            copied, deleted = self.migrator.reconcile(inp.tenant, source, target)
        self.lifecycle.complete(inp.tenant, inp.migration_id)
        chunks = self.migrator.count(target, inp.tenant)
        self.lifecycle.note(
            inp.tenant, inp.migration_id, state="shadowing", reconciled_copied=copied, reconciled_deleted=deleted
        )
        return Reconciled(copied=copied, deleted=deleted, chunks=chunks)

    @activity.defn(name="index.gate")
    @mapped
    def gate(self, inp: GateInput) -> GateDecision:
        """The two indexes on the golden set, and the shadow traffic: does the side index hold up?"""
        step = inp.step
        source, target = self.d.indexes.index(step.source), self.d.indexes.index(step.target)
        with keep_alive():
            d = self.d
            both = [d.indexes.ensure(source), d.indexes.ensure(target)]
            figures = (
                compare_indexes(d.store, d.sparse, d.redis, d.settings, step.tenant, inp.golden, both, self.reranker)
                if inp.golden
                else []
            )
        shadow = ShadowFigures(**self.lifecycle.shadow_summary(step.tenant, step.migration_id))
        decision = decide(figures, shadow, inp.max_drop, inp.min_overlap)
        flips = inp.force or (decision.passed and inp.auto_flip)
        self.lifecycle.note(
            step.tenant,
            step.migration_id,
            state="flipping" if flips else AWAITING,
            gate={
                "passed": decision.passed,
                "reasons": decision.reasons,
                "figures": [vars(f) for f in figures],
                "shadow": vars(shadow),
            },
        )
        return decision

    @activity.defn(name="index.flip")
    @mapped
    def flip(self, inp: EndInput) -> Flipped:
        step = inp.step
        retention = float(self.lifecycle.record(step.tenant, step.migration_id).get("retention_s") or 0)
        wait_ms, flip_ms = self.lifecycle.flip(step.tenant, step.migration_id, retention)
        self.lifecycle.note(
            step.tenant,
            step.migration_id,
            state=FLIPPED,
            flipped_at=time.time(),
            flip_ms=round(flip_ms, 3),
            flip_wait_ms=round(wait_ms, 3),
        )
        return Flipped(wait_ms=round(wait_ms, 3), flip_ms=round(flip_ms, 3))

    @activity.defn(name="index.end")
    @mapped
    def end(self, inp: EndInput) -> Ended:
        """The migration is over: the index the tenant no longer reads loses its points. Retired:
        the replaced (or rolled-back-from) index; cancelled or failed: the side index."""
        step = inp.step
        if inp.state not in ENDED:
            raise ValueError(f"a migration ends as one of {ENDED}, not {inp.state!r}")
        final = inp.state
        with keep_alive():
            if inp.state == RETIRED:
                if self.lifecycle.rolled_back(step.tenant, step.migration_id):
                    final = ROLLED_BACK  # what the record says at the end: the tenant went back
                name = self.lifecycle.release(step.tenant, step.migration_id)
            else:
                name = self.lifecycle.abandon(step.tenant, step.migration_id) or _side_if_unused(self, step)
            points = self.migrator.drop_tenant(step.tenant, self.d.indexes.index(name)) if name else 0
        self.lifecycle.note(
            step.tenant, step.migration_id, state=final, ended_at=time.time(), error=inp.error, dropped=name
        )
        return Ended(dropped_index=name, points=points)

    def all(self) -> Sequence[Any]:
        return [self.prepare, self.backfill, self.reconcile, self.gate, self.flip, self.end]


def _side_if_unused(acts: IndexActivities, step: MigrationStep) -> str:
    """A retry of `end` after `abandon` went through: the side index still has to be emptied,
    unless the tenant reads or writes it for another reason."""
    state = acts.d.indexes.state(step.tenant)
    return "" if step.target in (state.active, state.side, state.previous) else step.target


def decide(figures: Sequence[Any], shadow: ShadowFigures, max_drop: float, min_overlap: float) -> GateDecision:
    """Pass when no golden metric of the side index falls more than `max_drop` below the active
    one's and shadow overlap@10 reaches `min_overlap`; with neither signal there is nothing to
    pass on, and an operator decides."""
    reasons: list[str] = []
    if len(figures) == 2:
        old, new = figures
        for metric in ("ndcg_at_10", "recall_at_10", "recall_at_100"):
            drop = getattr(old, metric) - getattr(new, metric)
            if drop > max_drop:
                reasons.append(f"{metric} falls {drop:.4f} ({getattr(old, metric):.4f} -> {getattr(new, metric):.4f})")
    if min_overlap > 0:
        if not shadow.queries:
            reasons.append("no shadow queries ran, so overlap@10 could not be checked")
        elif shadow.overlap_at_10 < min_overlap:
            reasons.append(f"shadow overlap@10 {shadow.overlap_at_10:.3f} is under {min_overlap:.3f}")
    if len(figures) != 2 and not shadow.queries:
        reasons.append("no golden set and no shadow queries: nothing shows the side index is as good")
    return GateDecision(passed=not reasons, reasons=reasons, figures=list(figures), shadow=shadow)


def _rate(copied: int, seconds: float) -> float:
    return copied / seconds if seconds > 0 else 0.0
