"""The conversation's activity: a follow-up made standalone (see pipelines.conversation)."""

from __future__ import annotations

from typing import Any

from temporalio import activity

from activities.errors import mapped
from contracts.conversation import RewriteInput, RewriteOutput
from pipelines.conversation import FollowupSteps


class ConversationActivities:
    def __init__(self, steps: FollowupSteps) -> None:
        self.steps = steps

    @activity.defn(name="conversation.rewrite")
    @mapped
    def rewrite(self, inp: RewriteInput) -> RewriteOutput:
        return self.steps.rewrite(inp)

    def all(self) -> list[Any]:
        return [self.rewrite]
