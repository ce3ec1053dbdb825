"""`keel backup` and `keel restore`: a tenant's (or every tenant's) snapshot, to and from a folder.

Operator commands: they need Redis and Temporal, and the folder is written and read by the
worker (it owns the embedded vector store), so it must be on the worker's filesystem.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from app import backup as snapshots
from cli.common import connect_redis, console, fail
from contracts.backup import BackupOutput, RestoreOutput
from keel.config import get_settings
from keel.errors import BadInput, KeelError
from temporal.client import connect


def backup(
    out: Annotated[Path, typer.Option(help="the folder to write into (one sub-folder per tenant)")],
    tenant: Annotated[str, typer.Option(help="one tenant (default: every tenant, with --all)")] = "",
    all_tenants: Annotated[bool, typer.Option("--all", help="every tenant that has ingested")] = False,
) -> None:
    """Write a consistent snapshot of a tenant's points and Keel's records of it to a folder."""
    settings = get_settings()
    try:
        if bool(tenant) == all_tenants:
            raise BadInput("name one --tenant, or pass --all")
        r = connect_redis(settings)
        tenants = snapshots.tenants_to_back_up(r, tenant or None)

        async def run() -> list[BackupOutput]:
            return await snapshots.backup(await connect(settings), settings, r, tenants, out)

        done = asyncio.run(run())
    except KeelError as exc:
        fail(exc)
    for b in done:
        console.print(
            f"backed up {b.tenant} at generation {b.generation} ({b.index}, {b.embedding_version}): "
            f"{b.points} points, {b.redis_keys} records, {b.blobs} blobs, {b.bytes / 1e6:.1f} MB in {b.folder}",
            highlight=False,
        )


def restore(
    source: Annotated[Path, typer.Option("--from", help="a folder `keel backup` wrote")],
    tenant: Annotated[str, typer.Option(help="one tenant's snapshot (default: every one in the folder)")] = "",
    api_keys: Annotated[
        bool, typer.Option("--api-keys", help="restore the tenants' API keys too (a key known here keeps its state)")
    ] = False,
) -> None:
    """Bring tenants back from their snapshots into a stack where they have no data."""
    settings = get_settings()
    try:
        r = connect_redis(settings)
        found = snapshots.snapshots_in(source, tenant or None)

        async def run() -> list[RestoreOutput]:
            return await snapshots.restore(await connect(settings), settings, r, found, api_keys=api_keys)

        done = asyncio.run(run())
    except KeelError as exc:
        fail(exc)
    for d in done:
        console.print(
            f"restored {d.tenant} at generation {d.generation} ({d.index}): "
            f"{d.points} points, {d.redis_keys} records, {d.blobs} blobs",
            highlight=False,
        )
