"""DeleteDocumentWorkflow and EraseTenantWorkflow: removal for good, durable and idempotent.

Each is one heartbeated activity whose every write can be redone (see pipelines.delete), so a
worker lost mid-way is survived by a retry elsewhere, and a second deletion of the same thing
finds nothing and reports so. Ids are business keys (`delete/<tenant>/<doc id>`,
`erase/<tenant>`): a second request while one runs waits for the same run.
"""

from __future__ import annotations

import contextlib

from temporalio import workflow
from temporalio.exceptions import FailureError

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
        # Since conversations (docs/concepts/durability-and-replay.md): the tenant's conversations
        # end first, so none answers another turn while its data goes.
        if workflow.patched("erase-conversations"):
            live = await step(DeleteActivities.conversations, inp, policies.DELETE_DOCUMENT)
            for conversation_id in live.ids:
                handle = workflow.get_external_workflow_handle(f"conversation/{inp.tenant}/{conversation_id}")
                with contextlib.suppress(FailureError):  # ended already (expired or deleted)
                    await handle.signal("end")
        return await step(DeleteActivities.tenant, inp, policies.ERASE_TENANT)
