"""An embedding migration's state changes and its record, each under the tenant's publish lock.

The index hash (`index.active`) moves through:

    begin     side = target, side_state = backfilling    writes now reach both indexes
    complete  side_state = shadowing                     the side index is whole; shadow queries start
    flip      active = target, previous = old active     one transaction: a query reads one index or
                                                         the other; the generation moves on, so
                                                         nothing cached from the old index is served
    rollback  active = previous                          the same, back
    release   previous dropped from the hash             its points can go
    abandon   side dropped from the hash                 a cancelled or failed migration

Each takes the publish lock, as publishing and deleting do, so a publish sees either the old set
of indexes to write or the new one, never half. The migration's record (`stores.keys.migration_key`)
holds what operators read: state, progress, the gate's figures and the flip timings.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import redis

from contracts.index import ROLLED_BACK
from encoders.registry import EncoderSpec
from index.active import BACKFILLING, SHADOWING, IndexState, read_state, spec_named
from keel.errors import BadInput, MigrationConflict, MigrationNotFound, NothingToRollBack
from stores.keys import generation_key, index_key, migration_key, migrations_key, publish_lock_key, shadow_key


class Lifecycle:
    """Redis only (no model, no vector store): the API and the CLI use it as the worker does."""

    def __init__(self, r: redis.Redis, catalog: Mapping[str, EncoderSpec]) -> None:
        self.r = r
        self.catalog = catalog

    def state(self, tenant: str) -> IndexState:
        return read_state(self.r, tenant)

    @contextmanager
    def _locked(self, tenant: str) -> Iterator[IndexState]:
        with self.r.lock(publish_lock_key(tenant), timeout=120, blocking_timeout=120):
            yield self.state(tenant)

    # -- the index hash ---------------------------------------------------------------------
    def begin(self, tenant: str, migration_id: str, target: str) -> IndexState:
        """Register `target` as the tenant's side index: from here on every write reaches it.
        Redone by a retry of the same migration; refused while another one holds the tenant."""
        spec_named(self.catalog, target)  # a name in the catalog, or bad input
        with self._locked(tenant) as state:
            if state.migration == migration_id and state.side == target:
                return state  # a retry
            if state.migration and state.migration != migration_id and (state.side or self._retained(state)):
                raise MigrationConflict(
                    f"migration {state.migration} holds tenant {tenant!r}"
                    + (" (its replaced index is retained for a rollback; release it first)" if not state.side else "")
                )
            if target == state.active:
                raise BadInput(f"tenant {tenant!r} already reads the {target!r} index")
            self.r.hset(
                index_key(tenant), mapping={"side": target, "side_state": BACKFILLING, "migration": migration_id}
            )
            return self.state(tenant)

    def complete(self, tenant: str, migration_id: str) -> None:
        """The side index holds every chunk: shadow queries may compare it with the active one."""
        with self._locked(tenant) as state:
            if state.migration == migration_id and state.side:
                self.r.hset(index_key(tenant), "side_state", SHADOWING)

    def flip(self, tenant: str, migration_id: str, retention_s: float) -> tuple[float, float]:
        """Make the side index the active one; the old one is kept for `retention_s`. Returns
        (ms waiting for the lock, ms of the switch itself). A retry after it happened is a no-op."""
        asked = time.perf_counter()
        with self._locked(tenant) as state:
            held = time.perf_counter()
            if state.migration != migration_id:
                raise MigrationNotFound(f"migration {migration_id} does not hold tenant {tenant!r}")
            if state.side:
                pipe = self.r.pipeline(transaction=True)
                pipe.hset(
                    index_key(tenant),
                    mapping={
                        "active": state.side,
                        "previous": state.active,
                        "previous_until": time.time() + retention_s,
                    },
                )
                pipe.hdel(index_key(tenant), "side", "side_state")
                pipe.incr(generation_key(tenant))  # what was cached from the old index is unreachable now
                pipe.execute()
            done = time.perf_counter()
        return (held - asked) * 1000, (done - held) * 1000

    def rollback(self, tenant: str) -> tuple[str, str, float]:
        """The replaced index is active again, at once. Returns (migration id, the index rolled
        back from, ms of the switch). The rolled-back-from index keeps receiving writes until the
        migration releases it, so a second thought costs nothing either."""
        with self._locked(tenant) as state:
            if not self._retained(state):
                raise NothingToRollBack(f"tenant {tenant!r} has no replaced index retained")
            started = time.perf_counter()
            pipe = self.r.pipeline(transaction=True)
            pipe.hset(
                index_key(tenant), mapping={"active": state.previous, "previous": state.active, "rolled_back": "1"}
            )
            pipe.incr(generation_key(tenant))
            pipe.execute()
            ms = (time.perf_counter() - started) * 1000
        self.note(tenant, state.migration, state=ROLLED_BACK, rollback_ms=round(ms, 3))
        return state.migration, state.active, ms

    def release(self, tenant: str, migration_id: str) -> str:
        """The migration is over: its replaced (or rolled-back-from) index leaves the hash, and
        writes stop reaching it. Returns that index's name ("" when there was none)."""
        with self._locked(tenant) as state:
            if state.migration != migration_id:
                return ""
            pipe = self.r.pipeline(transaction=True)
            pipe.hdel(index_key(tenant), "previous", "previous_until", "migration", "rolled_back")
            pipe.execute()
            return state.previous

    def abandon(self, tenant: str, migration_id: str) -> str:
        """A cancelled or failed migration lets go of its side index (what users read never
        changed). Returns the side index's name ("" when it held none)."""
        with self._locked(tenant) as state:
            if state.migration != migration_id or not state.side:
                return ""
            pipe = self.r.pipeline(transaction=True)
            pipe.hdel(index_key(tenant), "side", "side_state", "migration")
            pipe.execute()
            return state.side

    def rolled_back(self, tenant: str, migration_id: str) -> bool:
        state = self.r.hmget(index_key(tenant), ["migration", "rolled_back"])
        return state[0] == migration_id and state[1] == "1"

    @staticmethod
    def _retained(state: IndexState) -> bool:
        return bool(state.previous) and state.previous_until > time.time()

    # -- the migration record --------------------------------------------------------------
    def create(self, tenant: str, migration_id: str, fields: dict[str, Any], *, overwrite: bool = True) -> None:
        """Write the migration's record. The API announces it as soon as the workflow starts
        (`overwrite=False`: its fields never replace what the workflow's first step wrote), so
        a caller can read it at once."""
        key = migration_key(tenant, migration_id)
        pipe = self.r.pipeline(transaction=True)
        pipe.hsetnx(key, "started_at", time.time())
        for name, value in _encode({"migration_id": migration_id, **fields}).items():
            if overwrite:
                pipe.hset(key, name, value)
            else:
                pipe.hsetnx(key, name, value)
        pipe.zadd(migrations_key(tenant), {migration_id: time.time()}, nx=True)
        pipe.execute()

    def note(self, tenant: str, migration_id: str, **fields: Any) -> None:
        if migration_id:
            self.r.hset(migration_key(tenant, migration_id), mapping=_encode({**fields, "updated_at": time.time()}))

    def record(self, tenant: str, migration_id: str) -> dict[str, Any]:
        raw: dict[str, str] = self.r.hgetall(migration_key(tenant, migration_id))  # type: ignore[assignment]
        if not raw:
            raise MigrationNotFound(f"tenant {tenant!r} has no migration {migration_id!r}")
        out: dict[str, Any] = {k: _decode(v) for k, v in raw.items()}
        out["shadow"] = self.shadow_summary(tenant, migration_id)
        return out

    def migrations(self, tenant: str, limit: int = 20) -> list[str]:
        return [str(m) for m in self.r.zrevrange(migrations_key(tenant), 0, limit - 1)]

    # -- shadow traffic --------------------------------------------------------------------
    def add_shadow(self, tenant: str, migration_id: str, overlap: float, tau: float | None) -> None:
        key = shadow_key(tenant, migration_id)
        pipe = self.r.pipeline(transaction=False)
        pipe.hincrby(key, "queries", 1)
        pipe.hincrbyfloat(key, "overlap_sum", overlap)
        if tau is not None:
            pipe.hincrby(key, "tau_n", 1)
            pipe.hincrbyfloat(key, "tau_sum", tau)
        pipe.execute()

    def shadow_summary(self, tenant: str, migration_id: str) -> dict[str, Any]:
        raw: dict[str, str] = self.r.hgetall(shadow_key(tenant, migration_id))  # type: ignore[assignment]
        n, tau_n = int(raw.get("queries", 0)), int(raw.get("tau_n", 0))
        return {
            "queries": n,
            "overlap_at_10": round(float(raw.get("overlap_sum", 0)) / n, 4) if n else 0.0,
            "rank_correlation": round(float(raw.get("tau_sum", 0)) / tau_n, 4) if tau_n else 0.0,
        }


def _encode(fields: dict[str, Any]) -> dict[Any, Any]:  # redis types its mapping invariantly
    return {k: json.dumps(v) for k, v in fields.items()}


def _decode(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw
