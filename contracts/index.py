"""BackfillIndexWorkflow: a tenant's embedding migration, what each step takes and gives back."""

from __future__ import annotations

from dataclasses import dataclass, field

# What a migration's record says it is doing (the workflow sets each as it gets there).
PREPARING, FLIPPED, AWAITING = "preparing", "flipped", "awaiting_approval"
ROLLED_BACK, RETIRED, CANCELLED, FAILED = "rolled_back", "retired", "cancelled", "failed"
ENDED = (RETIRED, CANCELLED, FAILED)


@dataclass(kw_only=True)
class GoldenQuery:
    """A judged query: its text, and the documents that answer it (by source, or the source's
    file stem, as a BEIR corpus id names a file) with graded relevance."""

    query: str
    relevant: dict[str, int]


@dataclass(kw_only=True)
class MigrationInput:
    tenant: str
    migration_id: str
    target: str  # an encoder name of the catalog (`index.active.encoder_catalog`)
    golden: list[GoldenQuery] = field(default_factory=list)
    max_drop: float = 0.01  # the gate: no golden metric of the side index may fall more than this
    min_overlap: float = 0.0  # ... and shadow overlap@10 must reach this (0: recorded, not gated)
    shadow_wait_s: float = 300.0  # shadow traffic collected before the gate decides
    auto_flip: bool = True  # flip once the gate passes; else wait for an approval
    force: bool = False  # flip whatever the gate says (the operator's call, recorded)
    retention_s: float = 7 * 24 * 3600.0  # the replaced index stays for a rollback this long
    page: int = 256


@dataclass(kw_only=True)
class MigrationStep:
    """What the steps after `prepare` need to know of a migration."""

    tenant: str
    migration_id: str
    source: str  # the encoder name of the index being replaced
    target: str
    page: int = 256
    chunks: int = 0


@dataclass(kw_only=True)
class Prepared:
    source: str
    source_version: str
    target_version: str
    chunks: int  # the tenant's points in the active index when the backfill began
    disk_bytes: int  # the side index's estimated size


@dataclass(kw_only=True)
class Backfilled:
    copied: int
    seconds: float
    chunks_per_s: float


@dataclass(kw_only=True)
class Reconciled:
    copied: int  # chunks the dual writes had missed (0 when they kept up)
    deleted: int  # chunks in the side index that the active one no longer has
    chunks: int  # the side index's points of the tenant, afterwards


@dataclass(kw_only=True)
class IndexFigures:
    index: str
    embedding_version: str
    queries: int
    ndcg_at_10: float
    recall_at_10: float
    recall_at_100: float


@dataclass(kw_only=True)
class ShadowFigures:
    queries: int = 0
    overlap_at_10: float = 0.0
    rank_correlation: float = 0.0


@dataclass(kw_only=True)
class GateInput:
    step: MigrationStep
    golden: list[GoldenQuery] = field(default_factory=list)
    max_drop: float = 0.01
    min_overlap: float = 0.0
    auto_flip: bool = True
    force: bool = False


@dataclass(kw_only=True)
class GateDecision:
    passed: bool
    reasons: list[str]  # why it failed, or what it could not check
    figures: list[IndexFigures] = field(default_factory=list)  # active first, then side
    shadow: ShadowFigures = field(default_factory=ShadowFigures)


@dataclass(kw_only=True)
class Flipped:
    wait_ms: float  # for the tenant's publish lock
    flip_ms: float  # the switch itself


@dataclass(kw_only=True)
class EndInput:
    step: MigrationStep
    state: str  # what the migration's record says at the end (retired, cancelled, failed)
    error: str = ""


@dataclass(kw_only=True)
class Ended:
    dropped_index: str  # the index whose points of the tenant were removed ("" when none)
    points: int


@dataclass(kw_only=True)
class MigrationOutcome:
    migration_id: str
    state: str
    gate: GateDecision | None = None
    flipped: Flipped | None = None
    backfilled: Backfilled | None = None
