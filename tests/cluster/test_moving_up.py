"""Moving up: a tenant backed up from the embedded stack (one process, Qdrant Edge, one Redis)
restores into the cluster profile and answers the same there."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from temporalio.client import Client

from app import backup as snapshots
from bench.cluster import cluster_settings
from gateway.keys import QUERY, KeyStore
from infra.cluster import ClusterProfile
from keel.config import Settings
from stores import redis as redis_store
from temporal.client import connect
from tests.conftest import SAMPLES
from tests.helpers import ingest
from tests.workflows.test_backup import answers

pytestmark = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.stack, pytest.mark.usefixtures("worker")]


async def test_a_tenant_backed_up_from_the_embedded_stack_answers_the_same_on_the_cluster(
    profile: ClusterProfile, client: Client, settings: Settings, redis_client: redis.Redis, tenant: str, tmp_path: Path
) -> None:
    counters, _ = await ingest(client, settings, redis_client, [SAMPLES], tenant)
    assert counters.ingested == 6
    _, token = KeyStore(redis_client).create(tenant=tenant, roles=[QUERY], name="reader")
    before = await answers(client, settings, redis_client, tenant)
    (done,) = await snapshots.backup(client, settings, redis_client, [tenant], tmp_path / "backups")

    # The cluster: its own Temporal, Redis Cluster and Qdrant cluster, and the same codec key
    # (a snapshot's manifest is signed with it).
    there = cluster_settings(profile)
    r2 = redis_store.connect(there)
    client2 = await connect(there)
    found = snapshots.snapshots_in(tmp_path / "backups", tenant)
    (restored,) = await snapshots.restore(client2, there, r2, found, api_keys=True)
    assert (restored.points, restored.generation) == (done.points, done.generation)
    assert await answers(client2, there, r2, tenant) == before
    assert KeyStore(r2).resolve(token).tenant == tenant
