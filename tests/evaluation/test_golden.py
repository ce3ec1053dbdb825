"""The quality gate: the golden set over the sample corpus, through the real pipeline, must stay
at or above the committed baselines (samples/golden/baseline.json)."""

from __future__ import annotations

import pytest
import redis
from temporalio.client import Client

from evaluation.golden import baseline, measure, regressions, table, tolerance
from keel.config import Settings

pytestmark = [pytest.mark.stack, pytest.mark.usefixtures("worker")]


async def test_golden_set_holds_its_baseline(
    client: Client, settings: Settings, redis_client: redis.Redis, tenant: str
) -> None:
    measured = await measure(client, settings, redis_client, tenant)
    floors = baseline()
    print(table(measured, floors))
    assert set(floors) <= set(measured)
    assert not regressions(measured, floors, tolerance()), table(measured, floors)


def test_a_drop_below_a_floor_is_a_regression() -> None:
    floors = {"ndcg@10": 0.9, "abstain_answerable": 0.1}
    assert regressions({"ndcg@10": 0.9, "abstain_answerable": 0.1}, floors, 0.02) == []
    assert len(regressions({"ndcg@10": 0.85, "abstain_answerable": 0.2}, floors, 0.02)) == 2
