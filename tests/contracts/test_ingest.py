"""The ingest order is written once, and every path follows it."""

from __future__ import annotations

from contracts.ingest import INGEST_STEPS, PREPARE_STEPS, STORE_STEPS
from pipelines.clock import StepClock
from workflows.ingest_document import _STEP_BY_STEP


def test_the_order_is_prepare_then_store_then_publish() -> None:
    assert (*PREPARE_STEPS, *STORE_STEPS, "publish") == INGEST_STEPS
    assert PREPARE_STEPS == ("parse", "chunk", "redact", "dedupe")


def test_the_workflows_step_by_step_path_has_every_step_before_publish() -> None:
    assert list(_STEP_BY_STEP) == [*PREPARE_STEPS, *STORE_STEPS]
    for step, (activity, _, _) in _STEP_BY_STEP.items():
        assert activity.__name__ == step


def test_the_benchmarks_clock_lists_steps_in_the_pipelines_order() -> None:
    clock = StepClock(on=True)
    for step in ("publish", "work files", "embed", "parse", "begin"):
        with clock(step):
            pass
    rows = [r.split()[0] for r in clock.table(1)[1:-1]]
    assert rows == ["begin", "parse", "embed", "publish", "work"]
