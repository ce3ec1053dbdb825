"""`keel`: the command line. `keel ingest` starts a batch job and follows it with a progress bar.

Ctrl-C stops following, never the job: the workflow keeps running and `keel job ID` picks it up.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import redis
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table
from temporalio.client import Client

from app.ingest import follow, new_job_id, stage, start_batch
from app.staging import StagedBatch
from keel import offline  # noqa: F401 - before any library that might reach for the network
from keel.config import Settings, get_settings
from keel.errors import KeelError, RedisUnavailable
from keel.tenancy import check_groups, check_tenant
from stores import redis as redis_store
from stores.jobs import Job, JobStore
from temporal.client import connect

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Keel: production RAG on Temporal.")
console = Console()


def _redis(settings: Settings) -> redis.Redis:
    client = redis_store.connect(settings)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        raise RedisUnavailable(
            f"cannot reach Redis at {settings.redis_url}: {exc}; is the stack up? try `make run`"
        ) from exc
    return client


def _fail(exc: KeelError) -> None:
    console.print(f"[red]error[/red] [{exc.code}] {exc.message}")
    raise typer.Exit(2)


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="files or folders to ingest")],
    tenant: Annotated[str, typer.Option(help="tenant that owns the documents")],
    groups: Annotated[str, typer.Option(help="comma-separated access groups (default: everyone in the tenant)")] = "",
    wait: Annotated[bool, typer.Option(help="follow the job until it ends")] = True,
) -> None:
    """Ingest files and folders as one batch job."""
    settings = get_settings()
    try:
        check_tenant(tenant)
        group_list = check_groups([g.strip() for g in groups.split(",") if g.strip()])
        r = _redis(settings)
        job_id = new_job_id()
        with console.status("staging files"):
            staged = stage(settings, paths, tenant, job_id)
        if staged.total == 0:
            console.print("no files found under the given paths")
            raise typer.Exit(1)
        asyncio.run(_start_and_follow(settings, r, staged, tenant, group_list, wait))
    except KeelError as exc:
        _fail(exc)


async def _start_and_follow(
    settings: Settings, r: redis.Redis, staged: StagedBatch, tenant: str, groups: list[str], wait: bool
) -> None:
    client = await connect(settings)
    handle = await start_batch(client, settings, r, staged, tenant, groups)
    job_id = staged.job_id
    console.print(f"job [bold]{job_id}[/bold]: {staged.total} files  ({settings.temporal_ui_link(handle.id)})")
    if not wait:
        return
    try:
        await _follow(client, settings, job_id)
    except (KeyboardInterrupt, asyncio.CancelledError):
        console.print(f"\nstopped following; job {job_id} keeps running. `keel job {job_id}` shows it.")
        sys.exit(130)
    job = JobStore(r).get(job_id)
    if job is not None:
        _summary(settings, r, job)


async def _follow(client: Client, settings: Settings, job_id: str) -> None:
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


@app.command()
def jobs(limit: int = 20) -> None:
    """Recent jobs."""
    settings = get_settings()
    try:
        r = _redis(settings)
    except KeelError as exc:
        _fail(exc)
    table = Table("tenant", "status", "files", "ingested", "unchanged", "failed", "chunks")
    table.columns.insert(0, Column("job", no_wrap=True, min_width=22))
    for j in JobStore(r).recent(limit):
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


@app.command()
def job(job_id: str, files: Annotated[bool, typer.Option(help="list every file, not only failures")] = False) -> None:
    """One job: counters and per-file outcomes."""
    settings = get_settings()
    try:
        r = _redis(settings)
    except KeelError as exc:
        _fail(exc)
    found = JobStore(r).get(job_id)
    if found is None:
        console.print(f"[red]error[/red] [not_found] no job {job_id!r}; `keel jobs` lists them")
        raise typer.Exit(2)
    console.print(f"job {job_id}  tenant {found.tenant}  ({settings.temporal_ui_link(found.workflow_id)})")
    _summary(settings, r, found)
    if files:
        table = Table("file", "status", "chunks", "doc id")
        for f in JobStore(r).files(job_id):
            table.add_row(f.source, f.status, str(f.chunks), f.doc_id or "")
        console.print(table)


@app.command()
def query(
    question: str,
    tenant: Annotated[str, typer.Option(help="tenant to ask in")],
    groups: Annotated[str, typer.Option(help="comma-separated access groups")] = "",
    mode: Annotated[str, typer.Option(help="hybrid, dense or bm25")] = "hybrid",
    rerank: Annotated[bool, typer.Option(help="re-score the candidates")] = True,
) -> None:
    """Ask a question; prints the answer with its sources, degradations and timings."""
    import uuid

    from app.query import build_query, query_workflow_id, run_query

    settings = get_settings()

    async def ask() -> None:
        r = _redis(settings)
        group_list = [g.strip() for g in groups.split(",") if g.strip()]
        inp = build_query(settings, r, uuid.uuid4().hex, tenant, group_list, question, mode=mode, rerank=rerank)
        out = await run_query(await connect(settings), settings, inp)
        console.print(out.answer, markup=False, highlight=False)
        console.print()
        for c in out.citations:
            where = " > ".join(c.section_path)
            console.print(f"[bold][{c.ref}][/bold] {c.source}" + (f"  ({where})" if where else ""), highlight=False)
        timings = "  ".join(f"{k} {v:.0f} ms" for k, v in out.timings_ms.items())
        console.print(f"\n[dim]route {out.route or '-'}  provider {out.provider or '-'}  {timings}[/dim]")
        if out.degradations:
            console.print(f"[yellow]degraded:[/yellow] {', '.join(out.degradations)}")
        console.print(
            f"[dim]request {inp.request_id}  ({settings.temporal_ui_link(query_workflow_id(inp.tenant, inp.request_id))})[/dim]"
        )

    try:
        asyncio.run(ask())
    except KeelError as exc:
        _fail(exc)


@app.command(name="eval")
def eval_(
    dataset: Annotated[Path, typer.Option(help="a BEIR-format folder")] = Path("../shared/datasets/scifact"),
    split: Annotated[str, typer.Option(help="test (measure) or train")] = "test",
    out: Annotated[Path, typer.Option(help="where the report goes")] = Path("bench/results"),
) -> None:
    """Retrieval quality (nDCG@10, Recall@10/100, MRR) of BM25, dense, hybrid and hybrid + re-score."""
    from evaluation.beir import check_dataset
    from evaluation.run import DEFAULT, evaluate

    settings = get_settings()

    async def run() -> dict[str, dict[str, float]]:
        return await evaluate(await connect(settings), settings, _redis(settings), dataset, split, out)

    try:
        check_dataset(dataset)
        results = asyncio.run(run())
    except KeelError as exc:
        _fail(exc)
    print(f"{dataset.resolve().name}_ndcg10={results[DEFAULT]['ndcg@10']:.4f}")


if __name__ == "__main__":
    app()
