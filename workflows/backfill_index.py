"""BackfillIndexWorkflow: move a tenant to another embedding index, gated by quality, with rollback.

    prepare -> backfill -> reconcile -> shadow traffic -> gate -> [approval] -> flip
            -> retention (rollback possible) -> end

From `prepare` on, every write of the tenant reaches both indexes, so the side index is whole
once the backfill has passed every page; `reconcile` proves it. The gate compares both indexes
on the golden set and reads the shadow traffic; it flips on its own when it passes, otherwise the
migration waits for an operator's approval (`keel index approve`) or a cancel. After the flip the
replaced index stays current for the retention period, in which `keel index rollback` switches
back at once; then it is emptied. A cancel or a failure before the flip empties the side index
and leaves what users read untouched. One migration per tenant: the workflow id is
`migrate/<tenant>`.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import is_cancelled_exception

from workflows import policies
from workflows.policies import step

with workflow.unsafe.imports_passed_through():
    from activities.index import IndexActivities
    from contracts.index import (
        AWAITING,
        CANCELLED,
        FAILED,
        RETIRED,
        ROLLED_BACK,
        EndInput,
        GateDecision,
        GateInput,
        MigrationInput,
        MigrationOutcome,
        MigrationStep,
    )


def migration_workflow_id(tenant: str) -> str:
    return f"migrate/{tenant}"


@workflow.defn(name="BackfillIndex")
class BackfillIndexWorkflow:
    def __init__(self) -> None:
        self._approved = False
        self._rolled_back = False
        self._released = False
        self._state = "preparing"

    @workflow.signal(name="approve")
    def approve(self) -> None:
        """Flip even though the gate did not pass (the operator's call)."""
        self._approved = True

    @workflow.signal(name="rolled_back")
    def rolled_back(self) -> None:
        """The tenant was switched back (`index.lifecycle.Lifecycle.rollback`): retention can end."""
        self._rolled_back = True

    @workflow.signal(name="release")
    def release(self) -> None:
        """End the retention now: the replaced index is emptied."""
        self._released = True

    @workflow.query(name="state")
    def state(self) -> str:
        return self._state

    @workflow.run
    async def run(self, inp: MigrationInput) -> MigrationOutcome:
        mig = MigrationStep(
            tenant=inp.tenant, migration_id=inp.migration_id, source="", target=inp.target, page=inp.page
        )
        outcome = MigrationOutcome(migration_id=inp.migration_id, state="preparing")
        try:
            prepared = await step(IndexActivities.prepare, inp, policies.PREPARE_MIGRATION)
            mig.source, mig.chunks = prepared.source, prepared.chunks
            self._state = "backfilling"
            outcome.backfilled = await step(IndexActivities.backfill, mig, policies.BACKFILL)
            self._state = "reconciling"
            await step(IndexActivities.reconcile, mig, policies.RECONCILE)
            self._state = "shadowing"
            if inp.shadow_wait_s > 0:
                await workflow.sleep(timedelta(seconds=inp.shadow_wait_s))
            self._state = "gating"
            gate_input = GateInput(
                step=mig,
                golden=inp.golden,
                max_drop=inp.max_drop,
                min_overlap=inp.min_overlap,
                auto_flip=inp.auto_flip,
                force=inp.force,
            )
            outcome.gate = await step(IndexActivities.gate, gate_input, policies.GATE)
            if not self._may_flip(inp, outcome.gate):
                self._state = AWAITING
                await workflow.wait_condition(lambda: self._approved)
            self._state = "flipping"
            outcome.flipped = await step(IndexActivities.flip, EndInput(step=mig, state="flipped"), policies.FLIP)
        except BaseException as exc:
            cancelled = is_cancelled_exception(exc)
            self._state = CANCELLED if cancelled else FAILED
            # Cleanup runs even after a cancel: the workflow may still run activities once it caught it.
            end = EndInput(step=mig, state=self._state, error="" if cancelled else str(exc))
            await step(IndexActivities.end, end, policies.END_MIGRATION)
            raise
        self._state = "retaining"
        try:
            await workflow.wait_condition(
                lambda: self._rolled_back or self._released, timeout=timedelta(seconds=inp.retention_s)
            )
        except TimeoutError:
            pass  # the retention period is over
        except asyncio.CancelledError:
            pass  # a cancel after the flip keeps the new index and ends the retention now
        await step(IndexActivities.end, EndInput(step=mig, state=RETIRED), policies.END_MIGRATION)
        outcome.state = ROLLED_BACK if self._rolled_back else RETIRED
        self._state = outcome.state
        return outcome

    def _may_flip(self, inp: MigrationInput, gate: GateDecision) -> bool:
        return inp.force or self._approved or (gate.passed and inp.auto_flip)
