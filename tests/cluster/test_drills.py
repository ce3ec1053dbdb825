"""Keel on the cluster profile, with parts of it killed: a 3-node Qdrant cluster, a Redis Cluster
(3 primaries, a replica each), two API-only processes, a query worker and an ingest worker, each a
real process. Each drill kills one part with SIGKILL while a batch is ingested and both API
processes are asked, and then: no document lost or ingested twice, no wrong answer (right, or a
503 with Retry-After), and answers right again within 30 s with no operator. The figures on
SciFact are `make bench-cluster`'s."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from bench.cluster import DRILLS, baseline, cluster_settings, drill, ingest_through_workflows
from gateway.keys import INGEST, QUERY, KeyStore
from infra.cluster import ClusterProfile
from stores import redis as redis_store
from tests.conftest import SAMPLES

pytestmark = [pytest.mark.slow, pytest.mark.cluster]
TENANT = "asked"
GOLDEN = Path(__file__).resolve().parents[2] / "samples" / "golden" / "queries.jsonl"


def _batch(folder: Path, name: str, count: int) -> list[Path]:
    """Small documents of facts no question asks about, one file each."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"{name}-{i:02d}.md"
        path.write_text(
            f"# Component {name} {i}\n\nThe {name} component number {i} keeps its settings in a file of its own. "
            f"Its owner reviews shard {i * 7 % 13} every week, and its alarms page the team on call.\n"
        )
        paths.append(path)
    return paths


async def test_answers_and_ingests_through_node_and_process_losses(profile: ClusterProfile, tmp_path: Path) -> None:
    settings = cluster_settings(profile)
    r = redis_store.connect(settings)
    _, key = KeyStore(r).create(tenant=TENANT, roles=[QUERY, INGEST], name="drills")
    assert await ingest_through_workflows(settings, sorted(SAMPLES.iterdir()), TENANT) > 0
    questions = [json.loads(line)["text"] for line in GOLDEN.read_text().splitlines() if line.strip()]
    expected = await baseline(profile.api_urls, key, questions)
    assert len(expected) >= len(questions) // 2  # most questions cite documents, the same on both processes

    for name in DRILLS:
        result = await drill(
            profile,
            settings,
            name,
            _batch(tmp_path / name, name.replace("_", "-"), 8),
            key,
            expected,
            clients=2,
            down_s=4.0,
            settle_s=4.0,
        )
        o = result.outcomes
        assert result.lost == 0, f"{name}: {result.lost} documents of the batch were not published"
        assert result.duplicated == 0, f"{name}: {result.duplicated} chunks are held by two points"
        assert o.wrong == 0, f"{name}: {o.wrong} wrong answers: {o.wrong_examples}"
        assert o.right > 0 and result.recovery_s <= 30, f"{name}: answers right again after {result.recovery_s:.1f} s"

    # Both API processes serve at the end, each on its own.
    async with httpx.AsyncClient(timeout=30) as http:
        for api in profile.api_urls:
            resp = await http.post(
                f"{api}/v1/query", json={"question": questions[0]}, headers={"Authorization": f"Bearer {key}"}
            )
            assert resp.status_code == 200
