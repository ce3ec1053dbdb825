"""`keel admin`: one-off operations on a deployment's own state (Redis access)."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import connect_redis, console
from keel.config import get_settings
from stores import key_layout

admin_app = typer.Typer(no_args_is_help=True, help="One-off operations on a deployment's own state.")


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
