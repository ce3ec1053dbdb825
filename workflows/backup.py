"""BackupTenantWorkflow and RestoreTenantWorkflow: a tenant's snapshot, taken or brought back.

One heartbeated activity each, on the ingest queue: the worker is the process that owns the
embedded vector store, so it is the one that can read and write the points. Ids are business
keys (`backup/<tenant>/<stamp>`, `restore/<tenant>`), so two restores of one tenant never run
at once; each run is visible, and replayable, in the Temporal UI.
"""

from __future__ import annotations

from temporalio import workflow

from workflows import policies
from workflows.policies import step

with workflow.unsafe.imports_passed_through():
    from activities.backup import BackupActivities
    from contracts.backup import BackupInput, BackupOutput, RestoreInput, RestoreOutput


@workflow.defn(name="BackupTenant")
class BackupTenantWorkflow:
    @workflow.run
    async def run(self, inp: BackupInput) -> BackupOutput:
        return await step(BackupActivities.backup, inp, policies.BACKUP)


@workflow.defn(name="RestoreTenant")
class RestoreTenantWorkflow:
    @workflow.run
    async def run(self, inp: RestoreInput) -> RestoreOutput:
        return await step(BackupActivities.restore, inp, policies.RESTORE)
