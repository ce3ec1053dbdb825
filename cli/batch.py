"""Operator commands on ingestion's own state: a batch ingest straight to Temporal, the jobs list.

`keel admin ingest` stages files and starts one batch job through Temporal and Redis directly (what
the HTTP upload does a file at a time): for an operator on the box, a large folder as one job with
one progress bar. `keel jobs` lists a tenant's recent jobs from Redis. Ctrl-C stops following,
never the job: the workflow keeps running and `keel job ID` shows it.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import redis
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table
from temporalio.client import Client

from app.ingest import follow, new_job_id, stage, start_batch
from app.staging import StagedBatch
from cli.common import connect_redis as _redis
from cli.common import console, principal
from cli.common import fail as _fail
from gateway.keys import INGEST, Principal
from keel import offline  # noqa: F401 - before any library that might reach for the network
from keel.config import Settings, get_settings
from keel.errors import KeelError
from keel.tenancy import document_groups
from stores.jobs import Job, JobStore
from temporal.client import connect

TENANT_HELP = "the tenant (default: the API key's; another one is refused)"


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="files or folders to ingest")],
    tenant: Annotated[str | None, typer.Option(help=TENANT_HELP)] = None,
    groups: Annotated[
        str, typer.Option(help="give the documents these of the key's groups (default: all of them)")
    ] = "",
    wait: Annotated[bool, typer.Option(help="follow the job until it ends")] = True,
) -> None:
    """Ingest files and folders as one batch job through Temporal, as the API key's tenant and groups."""
    settings = get_settings()
    try:
        r = _redis(settings)
        who = principal(settings, r, INGEST, tenant, groups)
        job_id = new_job_id(who.tenant)
        with console.status("staging files"):
            staged = stage(settings, paths, who.tenant, job_id)
        if staged.total == 0:
            console.print("no files found under the given paths")
            raise typer.Exit(1)
        asyncio.run(_start_and_follow(settings, r, staged, who, wait))
    except KeelError as exc:
        _fail(exc)


async def _start_and_follow(
    settings: Settings, r: redis.Redis, staged: StagedBatch, who: Principal, wait: bool
) -> None:
    client = await connect(settings)
    groups = document_groups(who.groups)
    handle = await start_batch(client, settings, r, staged, who.tenant, groups, writer_groups=list(who.groups))
    job_id = staged.job_id
    console.print(f"job [bold]{job_id}[/bold]: {staged.total} files  ({settings.temporal_ui_link(handle.id)})")
    if not wait:
        return
    try:
        await _follow(client, job_id)
    except (KeyboardInterrupt, asyncio.CancelledError):
        console.print(f"\nstopped following; job {job_id} keeps running. `keel job {job_id}` shows it.")
        sys.exit(130)
    job = JobStore(r).get(job_id)
    if job is not None:
        _summary(settings, r, job)


async def _follow(client: Client, job_id: str) -> None:
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("chunks {task.fields[chunks]}  failed {task.fields[failed]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("files", total=None, chunks=0, failed=0)
        async for p in follow(client, job_id):
            if p is not None:
                c = p.counters
                bar.update(task, total=c.total, completed=c.done, chunks=c.chunks, failed=c.failed)


def _summary(settings: Settings, r: redis.Redis, job: Job) -> None:
    c = job.counters
    console.print(
        f"[bold]{job.status}[/bold]: {c['ingested']} ingested, {c['unchanged']} unchanged, "
        f"{c['failed']} failed of {c['total']}  ({c['chunks']} chunks, {c['duplicates']} duplicates skipped)"
    )
    failed = JobStore(r).files(job.job_id, status="failed")
    if failed:
        console.print("[bold]failed files[/bold] (run the same `keel ingest` again to retry just these):")
        for f in failed:
            console.print(f"  [red]{f.code}[/red]  {f.source}\n      {f.message}", soft_wrap=True)
            if f.workflow_id:
                console.print(f"      run: {settings.temporal_ui_link(f.workflow_id, f.run_id)}", soft_wrap=True)


def jobs(limit: int = 20, tenant: Annotated[str | None, typer.Option(help=TENANT_HELP)] = None) -> None:
    """The API key's tenant's recent jobs."""
    settings = get_settings()
    try:
        r = _redis(settings)
        who = principal(settings, r, INGEST, tenant)
    except KeelError as exc:
        _fail(exc)
    table = Table("tenant", "status", "files", "ingested", "unchanged", "failed", "chunks")
    table.columns.insert(0, Column("job", no_wrap=True, min_width=22))
    for j in JobStore(r).recent(limit, tenant=who.tenant):
        c = j.counters
        table.add_row(
            j.job_id,
            j.tenant,
            j.status,
            str(c["total"]),
            str(c["ingested"]),
            str(c["unchanged"]),
            str(c["failed"]),
            str(c["chunks"]),
        )
    console.print(table)
