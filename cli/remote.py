"""The tenant's commands, over Keel's HTTP API: what a user with a URL and an API key can do.

`KEEL_URL` names the API (default `http://127.0.0.1:8000`, where `make run` serves it) and
`KEEL_API_KEY` the key, else the keys file `make run` writes (`$KEEL_DATA_DIR/keys.env`, default
`.keel/keys.env`). The tenant, roles and groups are the key's, as for any HTTP caller; `--groups`
may narrow them. Nothing here imports the server: no models, no Temporal, no Redis, so a command
costs its HTTP calls and little else.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.markup import escape

from keel_client import Keel, KeelAPIError

DEFAULT_URL = "http://127.0.0.1:8000"
_FAILURES = (KeelAPIError, httpx.TransportError, OSError)  # refused, or not reached
GROUPS_HELP = "narrow the key's access groups to these (comma-separated)"
console = Console(width=None if sys.stdout.isatty() else 160)


def api_url() -> str:
    return os.environ.get("KEEL_URL", "").strip() or DEFAULT_URL


def api_key() -> str:
    token = os.environ.get("KEEL_API_KEY", "").strip()
    if token:
        return token
    keys_file = Path(os.environ.get("KEEL_DATA_DIR", "").strip() or ".keel") / "keys.env"
    if keys_file.is_file():
        for line in keys_file.read_text().splitlines():
            name, _, value = line.partition("=")
            if name.strip() == "KEEL_API_KEY" and value.strip():
                return value.strip()
    _refuse("missing_key", f"set KEEL_API_KEY, or run `make run` (it writes {keys_file})")


def client(groups: str = "") -> Keel:
    # The CLI's output is the answer: httpx's per-request INFO lines are not for its reader, even
    # where the host process logs at INFO.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return Keel(api_url(), api_key(), groups=[g.strip() for g in groups.split(",") if g.strip()])


def _refuse(code: str, message: str, request_id: str = "") -> NoReturn:
    said = escape(f"[{code}]") + " " + escape(message) + (f"  (request {request_id})" if request_id else "")
    console.print(f"[red]error[/red] {said}", highlight=False)
    raise typer.Exit(2)


def _failed(exc: Exception) -> NoReturn:
    if isinstance(exc, KeelAPIError):
        _refuse(exc.code or f"http_{exc.status}", exc.message, exc.request_id)
    _refuse("api_unreachable", f"cannot reach Keel at {api_url()}: {exc}; set KEEL_URL, or run `make run`")


def query(
    question: str,
    groups: Annotated[str, typer.Option(help=GROUPS_HELP)] = "",
    mode: Annotated[str, typer.Option(help="hybrid, dense or bm25")] = "hybrid",
    rerank: Annotated[bool, typer.Option(help="re-score the candidates")] = True,
    stream: Annotated[bool, typer.Option(help="print the answer as it is written")] = False,
) -> None:
    """Ask a question; prints the answer with its sources, degradations and timings."""
    try:
        with client(groups) as keel:
            if stream:
                answer: dict[str, Any] = {}
                for event, data in keel.stream(question, mode=mode, rerank=rerank):
                    if event == "token":
                        console.print(str(data), end="", markup=False, highlight=False, soft_wrap=True)
                    elif event == "reset":
                        console.print("\n[yellow](a model failed mid-answer; the answer restarts)[/yellow]")
                    elif event == "done":
                        answer = data
                console.print()
                _print_answer(answer, text=False)
            else:
                _print_answer(keel.query(question, mode=mode, rerank=rerank))
    except _FAILURES as exc:
        _failed(exc)


def _print_answer(answer: dict[str, Any], text: bool = True) -> None:
    if text:
        console.print(answer["answer"], markup=False, highlight=False)
    console.print()
    for c in answer.get("citations", []):
        where = " > ".join(c["section_path"])
        line = f"[{c['ref']}] {c['source']}" + (f"  ({where})" if where else "")
        console.print(escape(line), highlight=False)
    timings = "  ".join(f"{k} {v:.0f} ms" for k, v in answer.get("timings_ms", {}).items())
    route = f"route {answer.get('route') or '-'}  provider {answer.get('provider') or '-'}"
    console.print(f"\n[dim]{route}  {timings}[/dim]")
    if answer.get("degradations"):
        console.print(f"[yellow]degraded:[/yellow] {', '.join(answer['degradations'])}")
    console.print(f"[dim]request {answer.get('request_id', '')}[/dim]")


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="files or folders to ingest")],
    groups: Annotated[
        str, typer.Option(help="give the documents these of the key's groups (default: all of them)")
    ] = "",
    wait: Annotated[bool, typer.Option(help="follow the jobs until they end")] = True,
) -> None:
    """Upload files and folders (a job per file) and follow them to the end.

    Unchanged files are recognised and skipped, so the same command again retries only what failed."""
    files = sorted({f for p in paths for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file()})
    if not files:
        _refuse("no_files", "no files found under the given paths")
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    jobs: dict[str, Path] = {}
    results: dict[str, dict[str, Any]] = {}
    try:
        with client() as keel, Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=console,
        ) as bar:  # fmt: skip
            sent = bar.add_task("uploaded", total=len(files))
            done = bar.add_task("ingested", total=len(files), visible=wait)
            for f in files:
                jobs[keel.ingest(f, source=_source(f), groups=groups)["job_id"]] = f
                bar.advance(sent)
            while wait and len(results) < len(jobs):
                for job_id in [j for j in jobs if j not in results]:
                    state = keel.job(job_id)
                    if state["status"] not in ("running", "pending"):
                        results[job_id] = state
                        bar.advance(done)
                if len(results) < len(jobs):
                    time.sleep(0.2)
    except _FAILURES as exc:
        _failed(exc)
    except KeyboardInterrupt:
        console.print(f"\nstopped following; {len(jobs)} jobs keep running (`keel job ID` shows one).")
        raise typer.Exit(130) from None
    if not wait:
        for job_id, f in jobs.items():
            console.print(f"job {job_id}: {f}")
        return
    _summary([file for state in results.values() for file in state["files"]])


def _source(path: Path) -> str:
    """The document's name: its path as given, so a folder's files stay apart and a re-run replaces them."""
    return str(path)


def _summary(files: list[dict[str, Any]]) -> None:
    by_status: dict[str, int] = {}
    for f in files:
        by_status[f["status"]] = by_status.get(f["status"], 0) + 1
    counts = ", ".join(f"{n} {status}" for status, n in sorted(by_status.items()))
    console.print(f"[bold]done[/bold]: {counts} of {len(files)}  ({sum(f['chunks'] for f in files)} chunks)")
    failed = [f for f in files if f["status"] == "failed"]
    if failed:
        console.print("[bold]failed files[/bold] (run the same `keel ingest` again to retry just these):")
        for f in failed:
            console.print(f"  [red]{escape(f['code'] or '')}[/red]  {escape(f['source'])}", soft_wrap=True)
            console.print(f"      {escape(f['message'] or '')}", soft_wrap=True)
            if f.get("temporal_ui_url"):
                console.print(f"      run: {f['temporal_ui_url']}", soft_wrap=True)


def job(job_id: str, files: Annotated[bool, typer.Option(help="list every file, not only failures")] = False) -> None:
    """One job: its status, counters and each file's outcome."""
    try:
        with client() as keel:
            state = keel.job(job_id)
    except _FAILURES as exc:
        _failed(exc)
    c = state["counters"]
    console.print(f"job {job_id}  [bold]{state['status']}[/bold]  ({state['temporal_ui_url']})")
    console.print(f"{c.get('ingested', 0)} ingested, {c.get('unchanged', 0)} unchanged, {c.get('failed', 0)} failed")
    if not files:
        _summary(state["files"])
        return
    for f in state["files"]:
        console.print(escape(f"{f['status']:<10} {f['chunks']:>5} chunks  {f['doc_id'] or '-'}  {f['source']}"))


def delete(doc_id: str) -> None:
    """Remove a document for good (its points, record and files); the key must hold its groups."""
    try:
        with client() as keel:
            out = keel.delete(doc_id)
    except _FAILURES as exc:
        _failed(exc)
    console.print(f"{out['status']}: {doc_id}  (request {out['request_id']})")


def document(doc_id: str, groups: Annotated[str, typer.Option(help=GROUPS_HELP)] = "") -> None:
    """Print a document as the key may read it (its text as indexed, chunk by chunk)."""
    try:
        with client(groups) as keel:
            doc = keel.document(doc_id)
    except _FAILURES as exc:
        _failed(exc)
    console.print(
        f"[bold]{escape(doc['title'] or doc['source'])}[/bold]  {escape(doc['source'])}  version {doc['version']}"
    )
    for chunk in doc["chunks"]:
        console.print(f"\n[dim]{escape(' > '.join(chunk['section_path']))}[/dim]")
        console.print(chunk["text"], markup=False, highlight=False)
