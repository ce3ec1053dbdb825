"""The deletion activities: a document for good, or a whole tenant (see pipelines.delete)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from temporalio import activity

from activities.errors import mapped
from activities.heartbeat import keep_alive
from contracts.delete import Conversations, DeleteDocumentInput, DocumentRemoved, EraseTenantInput, TenantErased
from pipelines.delete import Deleter
from pipelines.deps import Deps
from pipelines.ingest import IngestSteps
from stores import conversations


class DeleteActivities:
    def __init__(self, deps: Deps) -> None:
        self.deleter = Deleter(deps, IngestSteps(deps))
        self.redis = deps.redis

    @activity.defn(name="delete.document")
    @mapped
    def document(self, inp: DeleteDocumentInput) -> DocumentRemoved:
        with keep_alive():  # re-homing may embed a few chunks: heartbeat on a timer
            return self.deleter.delete_document(inp.tenant, inp.doc_id, inp.writer_groups)

    @activity.defn(name="delete.tenant")
    @mapped
    def tenant(self, inp: EraseTenantInput) -> TenantErased:
        with keep_alive():
            return self.deleter.erase_tenant(inp.tenant)

    @activity.defn(name="delete.conversations")
    @mapped
    def conversations(self, inp: EraseTenantInput) -> Conversations:
        return Conversations(ids=sorted(conversations.every(self.redis, inp.tenant)))

    def all(self) -> Sequence[Any]:
        return [self.document, self.tenant, self.conversations]
