"""From the 0.1 key names to the tagged ones: every kind of key placed under its tenant's tag, and
the one-off migration run on keys that release wrote (recorded by its test suite), resumably."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from typer.testing import CliRunner

from cli import admin, main
from gateway.keys import KeyStore
from index.catalog import Catalog
from infra.services import Service, free_port, start_redis
from keel.config import Settings
from stores import key_layout, snapshot
from stores.jobs import JobStore
from stores.key_layout import tagged
from stores.keys import doc_key, generation_key, tenant_api_keys_key

RECORDS = Path(__file__).parent / "data" / "redis-0.1-records.json.gz"


def _owner(key_id: str) -> str | None:
    return {"k1": "acme"}.get(key_id)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("keel:doc:acme:d1", "keel:doc:{acme}:d1"),
        ("keel:docs:acme", "keel:docs:{acme}"),
        ("keel:dd:acme:all:band:3:ab", "keel:dd:{acme}:all:band:3:ab"),
        ("keel:cache:acme:exact:f00", "keel:cache:{acme}:exact:f00"),
        ("keel:audit:acme:denied", "keel:audit:{acme}:denied"),
        ("keel:prompts:*", "keel:prompts:{*}"),
        ("keel:lock:publish:acme", "keel:lock:publish:{acme}"),
        ("keel:job:j1:files", "keel:job:{j1}:files"),
        ("keel:rl:tenant:acme:rpm", "keel:rl:{acme}:tenant:acme:rpm"),
        ("keel:rl:tenant:acme/uploads:spent:202612", "keel:rl:{acme}:tenant:acme/uploads:spent:202612"),
        ("keel:rl:key:k1/feedback:inflight", "keel:rl:{acme}:key:k1/feedback:inflight"),
        # single keys that no script combines with another keep their names
        ("keel:apikey:k1", "keel:apikey:k1"),
        ("keel:jobs", "keel:jobs"),
        ("keel:tenants", "keel:tenants"),
        ("keel:audit:-", "keel:audit:-"),
        ("keel:breaker:openai:trial", "keel:breaker:{openai}:trial"),
        ("keel:prompt:answer.v2:stats", "keel:prompt:answer.v2:stats"),
        ("keel:doc:{acme}:d1", "keel:doc:{acme}:d1"),  # tagged already
    ],
)
def test_each_kind_of_key_is_placed_under_its_owner(old: str, new: str) -> None:
    assert tagged(old, _owner) == new


def test_a_counter_of_a_key_that_no_longer_exists_has_no_place() -> None:
    assert tagged("keel:rl:key:gone:rpm", _owner) is None


@pytest.fixture
def old_server(tmp_path: Path) -> Iterator[redis.Redis]:
    """A server of its own holding what 0.1 wrote."""
    server: Service = start_redis(tmp_path, port=free_port())
    client = redis.Redis(port=server.port, decode_responses=True)
    try:
        yield client
    finally:
        client.close()
        server.stop()


def _load(r: redis.Redis) -> list[dict[str, Any]]:
    with gzip.open(RECORDS, "rt") as f:
        records: list[dict[str, Any]] = json.load(f)
    pipe = r.pipeline(transaction=False)
    for record in records:
        snapshot.restore(pipe, record)
    pipe.execute()
    return records


def test_a_migration_renames_what_0_1_wrote_and_keel_reads_it(old_server: redis.Redis) -> None:
    r = old_server
    records = _load(r)
    before = {rec["key"]: rec for rec in records}
    moved = key_layout.migrate(r)
    assert moved.conflicts == [] and moved.orphans == []
    assert moved.renamed == sum(1 for k in before if tagged(k, lambda _: "x") != k)
    assert moved.renamed > 1000
    # Nothing of a tenant is left under its old name, and every value moved as it was.
    untagged = [str(k) for k in r.scan_iter(match="keel:*") if "{" not in str(k)]
    assert all(tagged(k, lambda _: None) == k for k in untagged)
    owners = {
        k.rsplit(":", 1)[1]: str(rec["value"]["tenant"]) for k, rec in before.items() if k.startswith("keel:apikey:")
    }
    after = {rec["key"]: rec for rec in snapshot.dump(r, [str(tagged(k, owners.get)) for k in before])}
    assert len(after) == len(before)
    for old, rec in before.items():
        assert after[str(tagged(old, owners.get))]["value"] == rec["value"], old

    # Keel's own readers find the data under the new names.
    tenant = next(
        k.split(":")[2]
        for k in sorted(before)
        if k.startswith("keel:gen:") and f"keel:apikeys:{k.split(':')[2]}" in before
    )
    assert Catalog(r).generation(tenant) == int(before[f"keel:gen:{tenant}"]["value"]) > 0
    doc_id = next(k.split(":")[3] for k in before if k.startswith(f"keel:doc:{tenant}:"))
    assert Catalog(r).record(tenant, doc_id) == before[f"keel:doc:{tenant}:{doc_id}"]["value"]
    assert r.exists(doc_key(tenant, doc_id)) and not r.exists(f"keel:doc:{tenant}:{doc_id}")
    keys = KeyStore(r).list(tenant)
    assert {k.key_id for k in keys} == set(before[f"keel:apikeys:{tenant}"]["value"])
    assert r.smembers(tenant_api_keys_key(tenant)) == set(before[f"keel:apikeys:{tenant}"]["value"])
    jobs = JobStore(r).recent(limit=100)
    assert jobs and all(j.tenant for j in jobs)
    job = jobs[0]
    assert JobStore(r).files(job.job_id) or job.counters  # its outcomes moved with it
    assert r.get(generation_key(tenant)) == before[f"keel:gen:{tenant}"]["value"]


def test_a_migration_resumes_and_a_second_run_changes_nothing(old_server: redis.Redis) -> None:
    r = old_server
    records = _load(r)
    first_half = {rec["key"] for rec in records[: len(records) // 2]}
    # As if a first run stopped halfway: half the keys renamed by hand.
    for key in first_half:
        new = tagged(key, lambda kid: str(r.hget(f"keel:apikey:{kid}", "tenant") or "") or None)
        if new and new != key:
            r.rename(key, new)
    moved = key_layout.migrate(r)
    again = key_layout.migrate(r)
    assert moved.renamed > 0 and not moved.conflicts
    assert again.renamed == 0 and again.conflicts == [] and again.orphans == []


def test_a_key_whose_new_name_is_taken_is_left_and_reported(old_server: redis.Redis) -> None:
    r = old_server
    r.set("keel:gen:acme", "3")
    r.set("keel:gen:{acme}", "5")  # written by the new release meanwhile
    moved = key_layout.migrate(r)
    assert moved.conflicts == ["keel:gen:acme"]
    assert r.get("keel:gen:{acme}") == "5" and r.get("keel:gen:acme") == "3"


def test_the_command_counts_first_then_renames(
    old_server: redis.Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = old_server
    port = r.connection_pool.connection_kwargs["port"]
    monkeypatch.setattr(
        admin, "get_settings", lambda: settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{port}/0"})
    )
    r.set("keel:gen:acme", "3")
    r.hset("keel:doc:acme:d1", "version", "v1")
    runner = CliRunner()
    dry = runner.invoke(main.app, ["admin", "migrate-redis", "--dry-run"])
    assert dry.exit_code == 0 and "would rename 2" in dry.output
    assert r.get("keel:gen:acme") == "3"
    done = runner.invoke(main.app, ["admin", "migrate-redis"])
    assert done.exit_code == 0 and "renamed 2" in done.output
    assert r.get("keel:gen:{acme}") == "3" and r.hget("keel:doc:{acme}:d1", "version") == "v1"
