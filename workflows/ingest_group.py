"""IngestGroupWorkflow: several small documents, begin -> stage -> publish, each step once for all.

The same pipeline as IngestDocumentWorkflow's small-document path (parse through upsert staged
in one local activity, then publish), shared by up to `Settings.ingest_group_size` documents of
one batch, whose texts go through the model in one pass (`pipelines.ingest_group`). Each document
still ends on its own: the output holds one outcome per document, a failed one cleaned up and
pointing at this run.

If a step fails for good as a whole (its retries spent), `discard_group` removes what the group
staged and the failure goes up: IngestBatchWorkflow then runs each of its documents through an
IngestDocumentWorkflow of its own, so one bad document cannot fail the others.
"""

from __future__ import annotations

from temporalio import workflow

from workflows import policies
from workflows.policies import STEP_FAILED, local_step

with workflow.unsafe.imports_passed_through():
    from activities.ingest import IngestActivities
    from contracts.ingest import GroupInput, IngestGroupInput, IngestGroupOutput, PublishGroupInput


@workflow.defn(name="IngestGroup")
class IngestGroupWorkflow:
    @workflow.run
    async def run(self, inp: IngestGroupInput) -> IngestGroupOutput:
        begun = await local_step(IngestActivities.begin_group, inp, policies.BEGIN)
        if not begun.members:  # every document unchanged, already in flight elsewhere, or refused
            return IngestGroupOutput(outcomes=begun.settled)
        members = GroupInput(members=begun.members)
        try:
            staged = await local_step(IngestActivities.stage_group, members, policies.STAGE)
            published = await local_step(
                IngestActivities.publish_group, PublishGroupInput(staged=staged.staged), policies.PUBLISH
            )
        except STEP_FAILED:
            await local_step(IngestActivities.discard_group, members, policies.DISCARD)
            raise
        return IngestGroupOutput(outcomes=[*begun.settled, *staged.failed, *published])
