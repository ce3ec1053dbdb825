"""`keel admin delete` and `keel erase-tenant` against the real stack, with the key they are given."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis
from temporalio.client import Client
from typer.testing import CliRunner

from cli import documents, main
from gateway.keys import ADMIN, INGEST, KeyStore
from keel.config import Settings
from pipelines.deps import Deps
from tests.helpers import ingest, points_of

pytestmark = [pytest.mark.stack, pytest.mark.usefixtures("worker")]


async def test_keel_delete_and_erase_tenant(
    monkeypatch: pytest.MonkeyPatch,
    client: Client,
    settings: Settings,
    redis_client: redis.Redis,
    deps: Deps,
    tenant: str,
    tmp_path: Path,
) -> None:
    monkeypatch.setattr(documents, "get_settings", lambda: settings)
    note = tmp_path / "note.md"
    note.write_text("# Note\n\nThe kestrel feeder is refilled on Mondays.\n")
    await ingest(client, settings, redis_client, [note], tenant)
    assert points_of(deps, tenant, note) == 1
    runner = CliRunner()

    async def keel(*args: str, roles: tuple[str, ...] = (INGEST,)) -> tuple[int, str]:
        _, token = KeyStore(redis_client).create(tenant=tenant, roles=roles)
        result = await asyncio.to_thread(runner.invoke, main.app, list(args), env={"KEEL_API_KEY": token})
        return result.exit_code, result.output

    code, out = await keel("admin", "delete", "--source", str(note))
    assert code == 0 and "deleted" in out and "1 points" in out, out
    assert points_of(deps, tenant, note) == 0
    code, out = await keel("admin", "delete", "--source", str(note))
    assert code == 0 and "nothing to delete" in out, out
    code, out = await keel("admin", "delete")
    assert code == 2 and "bad_input" in out

    code, out = await keel("erase-tenant", "--confirm", tenant)
    assert code == 2 and "role_forbidden" in out
    code, out = await keel("erase-tenant", "--confirm", tenant + "x", roles=(ADMIN,))
    assert code == 2 and "bad_input" in out
    code, out = await keel("erase-tenant", "--confirm", tenant, roles=(ADMIN,))
    assert code == 0 and f"erased tenant {tenant}" in out, out
