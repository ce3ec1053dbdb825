"""`keel cache stats|purge --tenant T`: a tenant's answer cache, for operators (Redis access)."""

from __future__ import annotations

from typing import Annotated

import typer

from caches import admin
from cli.common import connect_redis, console, fail
from keel.config import get_settings
from keel.errors import KeelError
from keel.tenancy import check_tenant

cache_app = typer.Typer(no_args_is_help=True, help="A tenant's answer cache: what it holds, and emptying it.")
TENANT = Annotated[str, typer.Option(help="the tenant")]


@cache_app.command()
def stats(tenant: TENANT) -> None:
    """Entries, bytes, and hits and misses by layer."""
    try:
        got = admin.stats(connect_redis(get_settings()), check_tenant(tenant))
    except KeelError as exc:
        fail(exc)
    counters = ", ".join(f"{k} {v}" for k, v in sorted(got["counters"].items())) or "none yet"
    console.print(f"{tenant}: {got['entries']} entries, {got['bytes'] / 1e6:.2f} MB; {counters}", highlight=False)


@cache_app.command()
def purge(tenant: TENANT) -> None:
    """Remove every cached answer of the tenant (the next questions are answered afresh)."""
    try:
        gone = admin.purge(connect_redis(get_settings()), check_tenant(tenant))
    except KeelError as exc:
        fail(exc)
    console.print(f"{tenant}: {gone} cache keys removed", highlight=False)
