"""What every `keel` command shares: the console, Redis, errors, and the caller's key.

Commands that act for a tenant (ingest, jobs, query) take its API key from `KEEL_API_KEY`, or from
the keys file `make run` writes (`<data dir>/keys.env`, readable only by its owner): the tenant,
roles and groups come from the key, as over HTTP. Operator commands (`keel keys`, `keel eval`)
need only access to Redis, which is already the whole of Keel's state.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import redis
import typer
from rich.console import Console
from rich.markup import escape

from gateway.keys import KeyStore, Principal
from keel.config import Settings
from keel.errors import Forbidden, KeelError, MissingKey, RedisUnavailable, RoleForbidden
from stores import redis as redis_store

# Piped output (a log, a benchmark's) is not cut at 80 columns: tables keep their figures whole.
console = Console(width=None if sys.stdout.isatty() else 160)


def connect_redis(settings: Settings) -> redis.Redis:
    client = redis_store.connect(settings)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        raise RedisUnavailable(
            f"cannot reach Redis at {settings.redis_url}: {exc}; is the stack up? try `make run`"
        ) from exc
    return client


def fail(exc: KeelError) -> NoReturn:
    # escaped: "[code]" would otherwise be read as console markup and vanish
    console.print(f"[red]error[/red] {escape(f'[{exc.code}]')} {escape(exc.message)}", highlight=False)
    raise typer.Exit(2)


def api_key(settings: Settings) -> str:
    token = os.environ.get("KEEL_API_KEY", "").strip()
    if token:
        return token
    if settings.keys_file.is_file():
        for line in settings.keys_file.read_text().splitlines():
            name, _, value = line.partition("=")
            if name.strip() == "KEEL_API_KEY" and value.strip():
                return value.strip()
    raise MissingKey(f"set KEEL_API_KEY, or run `make run` (it writes {settings.keys_file})")


def principal(settings: Settings, r: redis.Redis, role: str, tenant: str | None, groups: str = "") -> Principal:
    """The caller, as its key says; `--tenant` must be the key's, `--groups` may only narrow."""
    who = KeyStore(r).resolve(api_key(settings))
    if role not in who.roles:
        raise RoleForbidden(f"the key has roles {sorted(who.roles)}; this needs `{role}`")
    if tenant is not None and tenant != who.tenant:
        raise Forbidden(f"the key is for tenant {who.tenant!r}, not {tenant!r}")
    wanted = [g.strip() for g in groups.split(",") if g.strip()]
    return who.narrowed(wanted) if wanted else who
