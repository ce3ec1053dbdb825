"""`keel keys` and a tenant command run with the key it printed."""

from __future__ import annotations

import pytest
import redis
from typer.testing import CliRunner

from cli import batch, keys, main
from gateway.keys import KeyStore
from keel.config import Settings


def test_keys_create_prints_the_key_last_and_jobs_use_it(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, redis_client: redis.Redis, tenant: str
) -> None:
    monkeypatch.setattr(keys, "get_settings", lambda: settings)
    monkeypatch.setattr(batch, "get_settings", lambda: settings)
    runner = CliRunner()
    made = runner.invoke(main.app, ["keys", "create", "--tenant", tenant, "--role", "ingest,query", "--name", "ci"])
    assert made.exit_code == 0, made.output
    token = made.output.strip().splitlines()[-1]
    assert KeyStore(redis_client).resolve(token).tenant == tenant

    monkeypatch.setenv("KEEL_API_KEY", token)
    assert runner.invoke(main.app, ["jobs"]).exit_code == 0
    wrong = runner.invoke(main.app, ["jobs", "--tenant", tenant + "x"])
    assert wrong.exit_code == 2 and "forbidden" in wrong.output

    monkeypatch.delenv("KEEL_API_KEY")
    assert not settings.keys_file.exists()  # the test stack has no keys file: no key at all
    missing = runner.invoke(main.app, ["jobs"])
    assert missing.exit_code == 2 and "missing_key" in missing.output
