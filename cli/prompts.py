"""`keel prompts promote|rollback|status` and `keel report ab`: prompt releases and their results."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from app import prompts, report
from cli.common import connect_redis, console, fail
from keel.config import get_settings
from keel.errors import BadInput, KeelError
from keel.tenancy import check_tenant

prompts_app = typer.Typer(no_args_is_help=True, help="Prompt releases: labels, canaries, the kill switch.")
report_app = typer.Typer(no_args_is_help=True, help="Reports over answers and their feedback.")
TENANT = Annotated[str | None, typer.Option(help="one tenant (default: every tenant without its own release)")]


def _tenant(tenant: str | None) -> str | None:
    return check_tenant(tenant) if tenant else None


@prompts_app.command()
def promote(
    version: Annotated[str, typer.Argument(help="a prompt version, e.g. answer.v2")],
    tenant: TENANT = None,
    canary: Annotated[
        float | None, typer.Option(help="a share of callers (0..1) gets it; the rest keep production")
    ] = None,
) -> None:
    """Make VERSION production (the current one is kept for rollback), or a canary for a share."""
    try:
        release = prompts.promote(connect_redis(get_settings()), _tenant(tenant), version, canary)
    except KeelError as exc:
        fail(exc)
    console.print(f"{tenant or 'all tenants'}: {release}", highlight=False)


@prompts_app.command()
def rollback(
    family: Annotated[str, typer.Argument(help="answer or answer-json")],
    tenant: TENANT = None,
) -> None:
    """The kill switch: the family's previous production version answers again, and no canary."""
    try:
        release = prompts.rollback(connect_redis(get_settings()), _tenant(tenant), family)
    except KeelError as exc:
        fail(exc)
    console.print(f"{tenant or 'all tenants'}: {family} now {release.production or 'the shipped default'}")


@prompts_app.command()
def status(tenant: TENANT = None) -> None:
    """Each family's labels, globally and for the tenant, and the shipped default."""
    try:
        got = prompts.status(connect_redis(get_settings()), _tenant(tenant))
    except KeelError as exc:
        fail(exc)
    for family, scopes in got.items():
        console.print(f"{family}: {scopes}", highlight=False)


@report_app.command()
def ab(
    a: Annotated[str, typer.Argument(help="one arm: a prompt version, model or index version")],
    b: Annotated[str, typer.Argument(help="the other arm")],
    tenant: Annotated[str, typer.Option(help="the tenant")],
    by: Annotated[str, typer.Option(help="prompt | model | index | label")] = "prompt",
    days: Annotated[float, typer.Option(help="the period: the last N days")] = 7.0,
) -> None:
    """Compare two arms over a period, each difference with its confidence."""
    try:
        if by not in report.DIMENSIONS:
            raise BadInput(f"--by is one of {', '.join(report.DIMENSIONS)}")
        now = time.time()
        recs = report.records(connect_redis(get_settings()), check_tenant(tenant), now - days * 86400, now)
        lines = report.compare(recs, by, a, b)
    except KeelError as exc:
        fail(exc)
    table = Table(title=f"{tenant}: {a} vs {b} by {by}, last {days:g} days ({len(recs)} answers in all)")
    for col in ("metric", a, b, "p", "difference"):
        table.add_column(col)
    for line in lines:
        p = "-" if line.p_value is None else f"{line.p_value:.3f}"
        table.add_row(line.metric, f"{line.a:.4g}", f"{line.b:.4g}", p, line.confidence)
    console.print(table)
