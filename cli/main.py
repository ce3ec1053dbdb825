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
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table
from temporalio.client import Client

from app.ingest import follow, new_job_id, stage, start_batch
from app.staging import StagedBatch
from cli.admin import admin_app
from cli.backup import backup, restore
from cli.cache import cache_app
from cli.common import connect_redis as _redis
from cli.common import console, principal
from cli.common import fail as _fail
from cli.documents import delete, erase
from cli.index import index_app
from cli.keys import audit, keys_app, tenants_app
from cli.prompts import prompts_app, report_app
from gateway.keys import INGEST, QUERY, Principal
from keel import offline  # noqa: F401 - before any library that might reach for the network
from keel.config import Settings, get_settings
from keel.errors import DatasetNotFound, KeelError, NotFound
from keel.tenancy import document_groups
from stores.jobs import Job, JobStore
from temporal.client import connect

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Keel: production RAG on Temporal.")
app.add_typer(keys_app, name="keys")
app.add_typer(tenants_app, name="tenants")
app.add_typer(index_app, name="index")
app.add_typer(cache_app, name="cache")
app.add_typer(prompts_app, name="prompts")
app.add_typer(report_app, name="report")
app.add_typer(admin_app, name="admin")
app.command()(audit)
app.command()(backup)
app.command()(restore)
app.command()(delete)
app.command(name="erase-tenant")(erase)
TENANT_HELP = "the tenant (default: the API key's; another one is refused)"


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="files or folders to ingest")],
    tenant: Annotated[str | None, typer.Option(help=TENANT_HELP)] = None,
    groups: Annotated[
        str, typer.Option(help="give the documents these of the key's groups (default: all of them)")
    ] = "",
    wait: Annotated[bool, typer.Option(help="follow the job until it ends")] = True,
) -> None:
    """Ingest files and folders as one batch job, as the API key's tenant and groups."""
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


@app.command()
def jobs(limit: int = 20) -> None:
    """The API key's tenant's recent jobs."""
    settings = get_settings()
    try:
        r = _redis(settings)
        who = principal(settings, r, INGEST, None)
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


@app.command()
def job(job_id: str, files: Annotated[bool, typer.Option(help="list every file, not only failures")] = False) -> None:
    """One job: counters and per-file outcomes."""
    settings = get_settings()
    try:
        r = _redis(settings)
        who = principal(settings, r, INGEST, None)
        found = JobStore(r).get(job_id)
        if found is None or found.tenant != who.tenant:  # another tenant's job is as absent as a missing one
            raise NotFound(f"no job {job_id!r}; `keel jobs` lists them")
    except KeelError as exc:
        _fail(exc)
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
    tenant: Annotated[str | None, typer.Option(help=TENANT_HELP)] = None,
    groups: Annotated[str, typer.Option(help="narrow the key's access groups to these")] = "",
    mode: Annotated[str, typer.Option(help="hybrid, dense or bm25")] = "hybrid",
    rerank: Annotated[bool, typer.Option(help="re-score the candidates")] = True,
) -> None:
    """Ask a question; prints the answer with its sources, degradations and timings."""
    import secrets

    from app.query import build_query, query_workflow_id, run_query

    settings = get_settings()

    async def ask() -> None:
        r = _redis(settings)
        who = principal(settings, r, QUERY, tenant, groups)
        redactor = None
        if settings.redact_questions:
            from guardrails.pii import Redactor

            redactor = Redactor(settings.pii_entities, settings.pii_score_threshold, settings.pii_use_ner)
        inp = build_query(
            settings,
            r,
            secrets.token_urlsafe(16),
            who.tenant,
            list(who.groups),
            question,
            mode=mode,
            rerank=rerank,
            redactor=redactor,
        )
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
    answers: Annotated[bool, typer.Option(help="also score the answers (a dataset with answers.jsonl)")] = False,
    retrieval: Annotated[bool, typer.Option(help="score retrieval in each mode")] = True,
    limit: Annotated[
        int | None, typer.Option(help="answers: a fixed sample of this many questions (a slow local model)")
    ] = None,
    concurrency: Annotated[int, typer.Option(help="answers: questions in flight at once")] = 8,
    offset: Annotated[
        int, typer.Option(help="answers: skip this many of the fixed sample's order (a fresh sample to label)")
    ] = 0,
    golden: Annotated[
        bool, typer.Option(help="only the golden set over the sample corpus, against its committed baseline")
    ] = False,
    conversations: Annotated[
        bool, typer.Option(help="follow-up turns: raw, Keel's rewrite and a human's (conversations.jsonl)")
    ] = False,
) -> None:
    """Retrieval quality (nDCG@10, Recall@10/100, MRR) of BM25, dense, hybrid and hybrid + re-score;
    with --answers, answer quality too (contains gold, F1, abstention, support); with --golden,
    the quality gate (exits 1 when a figure falls below its baseline)."""
    from evaluation.answers import evaluate_answers
    from evaluation.beir import check_dataset
    from evaluation.run import DEFAULT, evaluate

    settings = get_settings()
    if golden:
        _golden(settings)
        return
    name = dataset.resolve().name
    if conversations:
        _conversations(settings, dataset, out, concurrency)
        return

    async def run() -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
        client, r = await connect(settings), _redis(settings)
        found = await evaluate(client, settings, r, dataset, split, out) if retrieval else {}
        said = await evaluate_answers(client, settings, r, dataset, out, limit, concurrency, offset) if answers else {}
        return found, said

    try:
        check_dataset(dataset)
        if answers and not (dataset / "answers.jsonl").is_file():
            raise DatasetNotFound(f"no answers.jsonl in {dataset}: --answers needs gold answers")
        results, scored = asyncio.run(run())
    except KeelError as exc:
        _fail(exc)
    if results:
        print(f"{name}_ndcg10={results[DEFAULT]['ndcg@10']:.4f}")
    if scored:
        m = scored["all"]
        print(f"{name}_answer_contains={m['answer_contains']:.4f}")
        print(f"{name}_answer_f1={m['answer_f1']:.4f}")
        print(f"{name}_abstain_unanswerable={m['abstain_unanswerable']:.4f}")
        print(f"{name}_abstain_answerable={m['abstain_answerable']:.4f}")
        print(f"{name}_model_citations={m['model_citations']:.4f}")
        print(f"{name}_attributed_citations={m['attributed_citations']:.4f}")
        print(f"{name}_first_token_p50_ms={m['first_token_p50_ms']:.0f}")
        print(f"{name}_first_token_p95_ms={m['first_token_p95_ms']:.0f}")
        print(f"{name}_total_p50_ms={m['total_p50_ms']:.0f}")
        print(f"{name}_total_p95_ms={m['total_p95_ms']:.0f}")
        print(f"{name}_ungrounded={m['ungrounded']:.4f}")
        print(f"{name}_silent_uncited={m['silent_uncited']:.0f}")


def _conversations(settings: Settings, dataset: Path, out: Path, concurrency: int) -> None:
    from evaluation.beir import check_dataset
    from evaluation.conversations import VARIANTS, evaluate_conversations

    async def run() -> dict[str, dict[str, float]]:
        return await evaluate_conversations(
            await connect(settings), settings, _redis(settings), dataset, out, concurrency
        )

    try:
        check_dataset(dataset)
        results = asyncio.run(run())
    except KeelError as exc:
        _fail(exc)
    name = dataset.resolve().name
    for variant in VARIANTS:
        print(f"{name}_{variant}_ndcg10={results[variant]['ndcg@10']:.4f}")
    for variant, closed in results["gap_closed"].items():
        print(f"{name}_{variant}_gap_closed={closed:.4f}")


def _golden(settings: Settings) -> None:
    from evaluation.golden import baseline, measure, regressions, table, tolerance

    async def run() -> dict[str, float]:
        return await measure(await connect(settings), settings, _redis(settings), "eval-golden")

    try:
        measured = asyncio.run(run())
    except KeelError as exc:
        _fail(exc)
    floors = baseline()
    print(table(measured, floors))
    failed = regressions(measured, floors, tolerance())
    for line in failed:
        print(f"regression: {line}")
    for key, value in measured.items():
        print(f"golden_{key.replace('@', '')}={value:.4f}")
    if failed:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
