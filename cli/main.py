"""`keel`: the command line, in two groups.

- **Tenant commands** (`query`, `ingest`, `job`, `document`, `delete`) go through Keel's HTTP API
  with `KEEL_URL` and `KEEL_API_KEY` (`cli.remote`): anyone with a URL and a key can use them,
  and they import nothing of the server, so a command costs its HTTP calls.
- **Operator commands** (keys, tenants, index, cache, prompts, reports, backups, erasure, eval,
  the jobs list, `admin`) act on a deployment's Redis and Temporal directly and need their
  addresses (`KEEL_REDIS_URL`, `KEEL_TEMPORAL_ADDRESS`). Their modules load only when one of them
  runs (`LazyGroup`), so they do not slow the tenant commands or `keel --help`.
"""

from __future__ import annotations

import importlib
from typing import Any

import typer
from typer import _click as click  # the click typer vendors (0.29): its groups and commands are these
from typer.core import TyperCommand, TyperGroup

from cli import remote

TENANT_PANEL = "Tenant commands (over HTTP: KEEL_URL, KEEL_API_KEY)"
OPERATOR_PANEL = "Operator commands (need Redis and Temporal)"

# name -> (module, attribute, one line of help): loaded when the command runs.
OPERATOR: dict[str, tuple[str, str, str]] = {
    "jobs": ("cli.batch", "jobs", "The API key's tenant's recent jobs."),
    "keys": ("cli.keys", "keys_app", "API keys: create (shown once), list, revoke."),
    "tenants": ("cli.keys", "tenants_app", "Tenants' limits."),
    "audit": ("cli.keys", "audit", "A tenant's audit log."),
    "index": ("cli.index", "index_app", "A tenant's index: encoders, migrations, rollback."),
    "cache": ("cli.cache", "cache_app", "A tenant's answer caches: stats, purge."),
    "prompts": ("cli.prompts", "prompts_app", "Prompt releases: labels, canary, kill switch."),
    "report": ("cli.prompts", "report_app", "Feedback by prompt version and route."),
    "backup": ("cli.backup", "backup", "Back up tenants to a folder (signed snapshots)."),
    "restore": ("cli.backup", "restore", "Restore tenants from a backup folder."),
    "erase-tenant": ("cli.documents", "erase", "Erase the API key's tenant: every document, chunk and record."),
    "eval": ("cli.evaluate", "eval_", "Retrieval and answer quality on a dataset; the golden gate."),
    "admin": ("cli.admin", "admin_app", "One-off operations: batch ingest, Redis key layout, worker versions."),
}


class LazyGroup(TyperGroup):
    """A group whose operator commands are imported when invoked; `--help` lists them from their
    one line of help, so it imports none of them."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self._helping = False
        for name, (_, _, summary) in OPERATOR.items():
            self.commands[name] = TyperCommand(name=name, help=summary, rich_help_panel=OPERATOR_PANEL)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self._helping = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._helping = False

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in OPERATOR and not self._helping:
            return _load(cmd_name)
        return super().get_command(ctx, cmd_name)


def _load(name: str) -> click.Command:
    module, attr, _ = OPERATOR[name]
    found = getattr(importlib.import_module(module), attr)
    if not isinstance(found, typer.Typer):  # a single command: a one-command app of its own
        single = typer.Typer(add_completion=False)
        single.command(name=name)(found)
        found = single
    command = typer.main.get_command(found)
    command.name = name
    return command


app = typer.Typer(cls=LazyGroup, add_completion=False, no_args_is_help=True, help="Keel: production RAG on Temporal.")
for command in (remote.query, remote.ingest, remote.job, remote.document, remote.delete):
    app.command(rich_help_panel=TENANT_PANEL)(command)


if __name__ == "__main__":
    app()
