"""`keel index`: a tenant's embedding index: migrate it to another encoder, follow, approve, roll back.

Operator commands (they act for any tenant, with access to Redis and Temporal): a tenant admin
does the same for its own tenant through `/v1/admin/index/...`.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated, Any

import redis
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from app import index as migrations
from cli.common import connect_redis, console, fail
from contracts.index import GoldenQuery
from index.active import encoder_catalog
from keel.config import Settings, get_settings
from keel.errors import InvalidGolden, KeelError
from keel.tenancy import check_tenant
from temporal.client import connect

index_app = typer.Typer(no_args_is_help=True, help="A tenant's embedding index: migrate, follow, roll back.")
TENANT = Annotated[str, typer.Option(help="the tenant")]
# States at which `migrate` stops following: the flip happened, an operator is needed, or it ended.
SETTLED = ("flipped", "awaiting_approval", "rolled_back", "retired", "cancelled", "failed")


def golden_from_beir(folder: Path, split: str) -> list[GoldenQuery]:
    """A folder's judged queries (queries.jsonl and qrels, BEIR's layout; no corpus needed): its
    document ids name the ingested files by source, file name or stem."""
    from evaluation.beir import load_split

    try:
        loaded = load_split(folder, split)
    except (OSError, ValueError, KeyError) as exc:
        raise InvalidGolden(f"{folder} is not a golden set (queries.jsonl and qrels): {exc}") from exc
    return [GoldenQuery(query=text, relevant=loaded.qrels[qid]) for qid, text in loaded.queries.items()]


@index_app.command()
def encoders() -> None:
    """The encoders an index may use (the default, its 128-window twin, and KEEL_ENCODERS)."""
    table = Table("name", "model id", "window", "runtime", "path")
    for name, spec in encoder_catalog(get_settings()).items():
        table.add_row(name, spec.model_id, str(spec.window or "model's own"), spec.runtime, spec.path)
    console.print(table)


@index_app.command()
def migrate(
    tenant: TENANT,
    to: Annotated[str, typer.Option(help="the encoder name to migrate to (`keel index encoders`)")],
    golden: Annotated[Path | None, typer.Option(help="a BEIR folder whose judged queries gate the flip")] = None,
    split: Annotated[str, typer.Option(help="which of its qrels (test or train)")] = "test",
    max_drop: Annotated[float, typer.Option(help="the most any golden metric may fall")] = 0.01,
    min_overlap: Annotated[float, typer.Option(help="shadow overlap@10 needed (0: recorded only)")] = 0.0,
    shadow_wait: Annotated[float | None, typer.Option(help="seconds of shadow traffic before the gate")] = None,
    auto_flip: Annotated[bool, typer.Option(help="flip when the gate passes")] = True,
    force: Annotated[bool, typer.Option(help="flip whatever the gate says")] = False,
    retention: Annotated[float | None, typer.Option(help="seconds the old index stays for a rollback")] = None,
    wait: Annotated[bool, typer.Option(help="follow the migration until it flips or needs you")] = True,
) -> None:
    """Move the tenant to another encoder's index: backfill, gate on quality, flip."""
    settings = get_settings()
    try:
        check_tenant(tenant)
        r = connect_redis(settings)
        queries = golden_from_beir(golden, split) if golden else []

        async def start() -> str:
            client = await connect(settings)
            migration_id, handle = await migrations.start_migration(
                client,
                settings,
                r,
                tenant,
                to,
                golden=queries,
                max_drop=max_drop,
                min_overlap=min_overlap,
                shadow_wait_s=shadow_wait,
                auto_flip=auto_flip,
                force=force,
                retention_s=retention,
            )
            console.print(
                f"migration [bold]{migration_id}[/bold] of {tenant} to {to} ({settings.temporal_ui_link(handle.id)})",
                highlight=False,
            )
            return migration_id

        migration_id = asyncio.run(start())
        if wait:
            _follow(settings, r, tenant, migration_id)
    except KeelError as exc:
        fail(exc)


def _follow(settings: Settings, r: redis.Redis, tenant: str, migration_id: str) -> None:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[eta]}"))
    with Progress(*columns, TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task("preparing", total=None, eta="")
        while True:
            record = _record(settings, r, tenant, migration_id)
            state = str(record.get("state", ""))
            done, total = int(record.get("chunks_done") or 0), record.get("chunks_total")
            rate, eta = record.get("chunks_per_s"), record.get("eta_s")
            eta_text = f"{rate} chunks/s, eta {eta} s" if rate and state == "backfilling" else ""
            bar.update(task, description=state, completed=done, total=total, eta=eta_text)
            if state in SETTLED:
                break
            time.sleep(1.0)
    print_record(record)


def _record(settings: Settings, r: redis.Redis, tenant: str, migration_id: str = "") -> dict[str, Any]:
    return migrations.migration_record(settings, r, tenant, migration_id)


def print_record(record: dict[str, Any]) -> None:
    console.print(
        f"migration {record.get('migration_id')}: {record.get('state')}  "
        f"{record.get('source')} -> {record.get('target')}  "
        f"chunks {record.get('chunks_done', 0)}/{record.get('chunks_total', 0)}  "
        f"disk ~{int(record.get('disk_bytes') or 0) / 1e6:.1f} MB",
        highlight=False,
    )
    gate = record.get("gate")
    if isinstance(gate, dict):
        table = Table("index", "embedding version", "queries", "nDCG@10", "Recall@10", "Recall@100")
        for f in gate.get("figures", []):
            table.add_row(
                f["index"],
                f["embedding_version"],
                str(f["queries"]),
                f"{f['ndcg_at_10']:.4f}",
                f"{f['recall_at_10']:.4f}",
                f"{f['recall_at_100']:.4f}",
            )
        console.print(table)
        shadow = gate.get("shadow", {})
        console.print(
            f"shadow: {shadow.get('queries', 0)} queries, overlap@10 {shadow.get('overlap_at_10', 0):.3f}, "
            f"rank correlation {shadow.get('rank_correlation', 0):.3f}",
            highlight=False,
        )
        verdict = "passed" if gate.get("passed") else "did not pass: " + "; ".join(gate.get("reasons", []))
        console.print(f"gate {verdict}", highlight=False)
    for field in ("flip_ms", "rollback_ms", "error"):
        if record.get(field):
            console.print(f"{field}: {record[field]}", highlight=False)
    console.print(f"index: {record.get('index')}", highlight=False)


@index_app.command()
def status(
    tenant: TENANT, migration: Annotated[str, typer.Option(help="a migration id (default: the latest)")] = ""
) -> None:
    """The tenant's indexes and its latest (or a given) migration."""
    settings = get_settings()
    try:
        check_tenant(tenant)
        print_record(_record(settings, connect_redis(settings), tenant, migration))
    except KeelError as exc:
        fail(exc)


def _act(tenant: str, what: str) -> None:
    settings = get_settings()
    try:
        check_tenant(tenant)
        r = connect_redis(settings)

        async def run() -> None:
            client = await connect(settings)
            if what == "rollback":
                done = await migrations.rollback(client, settings, r, tenant)
                console.print(
                    f"rolled back: tenant {tenant} reads its previous index again "
                    f"(switch {done['rollback_ms']:.2f} ms); {done['left']} is emptied",
                    highlight=False,
                )
                return
            action = {"approve": migrations.approve, "cancel": migrations.cancel, "release": migrations.release}[what]
            await action(client, r, tenant)
            console.print(f"{what}: sent to the migration of {tenant}", highlight=False)

        asyncio.run(run())
    except KeelError as exc:
        fail(exc)


@index_app.command()
def approve(tenant: TENANT) -> None:
    """Flip a migration whose gate did not pass (the operator's call, audited)."""
    _act(tenant, "approve")


@index_app.command()
def cancel(tenant: TENANT) -> None:
    """Stop a migration before its flip: the side index is emptied, nothing users read changes."""
    _act(tenant, "cancel")


@index_app.command()
def rollback(tenant: TENANT) -> None:
    """Switch the tenant back to the index its last flip replaced, at once."""
    _act(tenant, "rollback")


@index_app.command()
def release(tenant: TENANT) -> None:
    """End the retention now: the replaced index is emptied and can no longer come back."""
    _act(tenant, "release")
