"""`keel keys` and `keel audit`: operator commands on the box, against Redis directly.

`keel keys create` prints the new key alone on its last line, so a script can take it with
`tail -1`; it is shown this once (only its hash is kept).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table

from cli.common import connect_redis, console, fail
from gateway.audit import Audit
from gateway.keys import ROLES, KeyStore
from gateway.limits import Limiter, Limits
from keel.config import get_settings
from keel.errors import KeelError
from keel.tenancy import check_tenant

keys_app = typer.Typer(no_args_is_help=True, help="API keys: create, list, revoke.")


def _when(t: float | None) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M") if t else ""


@keys_app.command("create")
def create(
    tenant: Annotated[str, typer.Option(help="the tenant the key acts for")],
    role: Annotated[str, typer.Option(help=f"comma-separated roles: {', '.join(ROLES)}")],
    groups: Annotated[str, typer.Option(help="comma-separated access groups the key holds")] = "",
    name: Annotated[str, typer.Option(help="a label for lists and the audit log")] = "",
    rpm: Annotated[int | None, typer.Option(help="requests a minute")] = None,
    tpm: Annotated[int | None, typer.Option(help="model tokens a minute")] = None,
    concurrent: Annotated[int | None, typer.Option(help="requests at once")] = None,
    budget_usd: Annotated[float | None, typer.Option(help="spend a calendar month, USD")] = None,
) -> None:
    """Create a key; it is printed once, alone on the last line."""
    try:
        r = connect_redis(get_settings())
        record, token = KeyStore(r).create(
            tenant=tenant,
            roles=[x.strip() for x in role.split(",") if x.strip()],
            groups=[g.strip() for g in groups.split(",") if g.strip()],
            name=name,
            limits=Limits(rpm=rpm, tpm=tpm, concurrent=concurrent, budget_usd=budget_usd),
        )
        Audit(r).record(tenant, "key_created", key_id="cli", created=record.key_id, roles=record.roles)
    except KeelError as exc:
        fail(exc)
    console.print(f"key {record.key_id} for tenant {record.tenant}: roles {','.join(record.roles)}", highlight=False)
    print(token)


@keys_app.command("list")
def list_keys(tenant: Annotated[str | None, typer.Option(help="only this tenant's keys")] = None) -> None:
    """Keys (ids, never the keys themselves)."""
    try:
        records = KeyStore(connect_redis(get_settings())).list(tenant)
    except KeelError as exc:
        fail(exc)
    table = Table("id", "tenant", "roles", "groups", "name", "limits", "created", "revoked")
    for k in records:
        table.add_row(
            k.key_id,
            k.tenant,
            ",".join(k.roles),
            ",".join(k.groups),
            k.name,
            _limits(k.limits),
            _when(k.created_at),
            _when(k.revoked_at),
        )
    console.print(table)


def _limits(limits: Limits) -> str:
    return " ".join(f"{k}={v:g}" for k, v in asdict(limits).items() if v is not None)


@keys_app.command("revoke")
def revoke(key_id: str) -> None:
    """Revoke a key: from the next request on it is refused."""
    try:
        r = connect_redis(get_settings())
        record = KeyStore(r).revoke(key_id)
        Audit(r).record(record.tenant, "key_revoked", key_id="cli", revoked=key_id)
    except KeelError as exc:
        fail(exc)
    console.print(f"revoked {record.key_id} (tenant {record.tenant})")


def audit(
    tenant: Annotated[str, typer.Option(help="whose audit log")],
    limit: Annotated[int, typer.Option(help="newest entries first")] = 50,
) -> None:
    """A tenant's audit log: keys created and revoked, requests denied."""
    try:
        entries = Audit(connect_redis(get_settings())).read(tenant, limit)
    except KeelError as exc:
        fail(exc)
    table = Table("when", "event", "key", "request", "detail")
    for e in entries:
        table.add_row(_when(e.at), e.event, e.key_id, e.request_id, " ".join(f"{k}={v}" for k, v in e.detail.items()))
    console.print(table)


tenants_app = typer.Typer(no_args_is_help=True, help="Tenants: their limits.")


@tenants_app.command("limits")
def tenant_limits(
    tenant: str,
    rpm: Annotated[int | None, typer.Option(help="requests a minute, for all the tenant's keys together")] = None,
    tpm: Annotated[int | None, typer.Option(help="model tokens a minute")] = None,
    concurrent: Annotated[int | None, typer.Option(help="requests at once")] = None,
    budget_usd: Annotated[float | None, typer.Option(help="spend a calendar month, USD")] = None,
    clear: Annotated[bool, typer.Option(help="remove every limit of the tenant")] = False,
) -> None:
    """Show a tenant's limits, or set them (an operator's, not a tenant admin's, to change)."""
    try:
        limiter = Limiter(connect_redis(get_settings()))
        check_tenant(tenant)
        wanted = Limits(rpm=rpm, tpm=tpm, concurrent=concurrent, budget_usd=budget_usd)
        if clear or wanted != Limits():
            limiter.set_tenant_limits(tenant, wanted if not clear else Limits())
        current = limiter.tenant_limits(tenant)
    except KeelError as exc:
        fail(exc)
    console.print(f"tenant {tenant}: {_limits(current) or 'no limits'}", highlight=False)
