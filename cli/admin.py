"""`keel admin`: operations on a deployment itself: its Redis keys, its workers' versions."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from cli import batch, documents
from cli.common import connect_redis, console, fail
from keel.config import Settings, get_settings
from keel.errors import BadInput
from stores import key_layout
from temporal import deployments
from temporal.client import connect
from temporal.deployments import workflow_code_id

admin_app = typer.Typer(no_args_is_help=True, help="One-off operations on a deployment's own state.")
admin_app.command(name="ingest")(batch.ingest)
admin_app.command(name="delete")(documents.delete)


@admin_app.command(name="migrate-redis")
def migrate_redis(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="count what would be renamed; change nothing")] = False,
) -> None:
    """Rename the keys a 0.1 release wrote to their tagged names (each tenant's keys in one cluster
    slot). Run it once, with Keel's processes stopped, before starting this release on that Redis;
    it resumes where a stopped run left off, and a second run changes nothing."""
    r = connect_redis(get_settings())

    def progress(moved: key_layout.Moved) -> None:
        console.print(f"  {moved.seen} keys seen, {moved.renamed} renamed", highlight=False)

    moved = key_layout.migrate(r, dry_run=dry_run, progress=progress)
    verb = "would rename" if dry_run else "renamed"
    console.print(f"{moved.seen} keys seen; {verb} {moved.renamed}", highlight=False)
    for key in moved.conflicts:
        console.print(f"  left {key}: its new name exists already", highlight=False)
    for key in moved.orphans:
        console.print(f"  left {key}: the API key it counts for no longer exists", highlight=False)
    if moved.conflicts:
        raise typer.Exit(code=1)


workers_app = typer.Typer(no_args_is_help=True, help="Temporal worker versioning: which release takes new workflows.")
admin_app.add_typer(workers_app, name="workers")


@workers_app.command(name="status")
def workers_status() -> None:
    """The deployment's versions and the current one."""
    settings = get_settings()
    if not settings.worker_deployment:
        fail(BadInput("worker versioning is off: set KEEL_WORKER_DEPLOYMENT"))
    state = asyncio.run(_describe(settings))
    console.print(f"deployment {state.name}: current {state.current or '(none)'}", highlight=False)
    for build_id in state.versions:
        console.print(f"  {build_id}{'  <- current' if build_id == state.current else ''}", highlight=False)


@workers_app.command(name="promote")
def workers_promote(
    build_id: Annotated[str, typer.Option(help="the version to make current (default: this release's)")] = "",
) -> None:
    """Send new workflows to a release's workers; the last release's pinned ones finish where they started."""
    settings = get_settings()
    if not settings.worker_deployment:
        fail(BadInput("worker versioning is off: set KEEL_WORKER_DEPLOYMENT"))
    chosen = build_id or settings.worker_build_id or workflow_code_id()
    asyncio.run(_promote(settings, chosen))
    console.print(f"deployment {settings.worker_deployment}: {chosen} is current", highlight=False)


async def _describe(settings: Settings) -> deployments.DeploymentState:
    return await deployments.describe(await connect(settings), settings.worker_deployment)


async def _promote(settings: Settings, build_id: str) -> None:
    await deployments.promote(await connect(settings), settings.worker_deployment, build_id)
