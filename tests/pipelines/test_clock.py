"""Where an ingest's time goes: nothing when off; per step, in the pipeline's order, when on."""

from __future__ import annotations

from contracts.ingest import INGEST_STEPS
from pipelines.clock import StepClock


def test_off_it_records_nothing() -> None:
    clock = StepClock()
    with clock("parse"):
        pass
    clock.texts(["a"])
    assert not clock.wall and not clock.embedded


def test_on_it_keeps_each_step_and_the_table_follows_the_pipeline_order() -> None:
    clock = StepClock(on=True)
    first, last = INGEST_STEPS[0], INGEST_STEPS[-1]
    for step in (last, "unlisted", first, first):
        with clock(step):
            sum(range(1000))
    clock.texts(["one", "two"])
    assert set(clock.wall) == {first, last, "unlisted"}
    assert clock.embedded == [["one", "two"]]
    rows = clock.table(docs=2)
    names = [row.split()[0] for row in rows[1:-1]]
    assert names == [first, last, "unlisted"]  # pipeline order, then what lies around the steps
    assert rows[-1].split()[:2] == ["all", "steps"]
