"""DeleteDocumentWorkflow and EraseTenantWorkflow: removal for good, durable and idempotent.

Each is one heartbeated activity whose every write can be redone (see pipelines.delete), so a
worker lost mid-way is survived by a retry elsewhere, and a second deletion of the same thing
finds nothing and reports so. Ids are business keys (`delete/<tenant>/<doc id>`,
`erase/<tenant>`): a second request while one runs waits for the same run.
"""

from __future__ import annotations

from temporalio import workflow

from workflows import policies
from workflows.policies import step

with workflow.unsafe.imports_passed_through():
    from activities.delete import DeleteActivities
    from contracts.delete import DeleteDocumentInput, DocumentRemoved, EraseTenantInput, TenantErased


@workflow.defn(name="DeleteDocument")
class DeleteDocumentWorkflow:
    @workflow.run
    async def run(self, inp: DeleteDocumentInput) -> DocumentRemoved:
        return await step(DeleteActivities.document, inp, policies.DELETE_DOCUMENT)


@workflow.defn(name="EraseTenant")
class EraseTenantWorkflow:
    @workflow.run
    async def run(self, inp: EraseTenantInput) -> TenantErased:
        return await step(DeleteActivities.tenant, inp, policies.ERASE_TENANT)
