"""The query activities: each step of QueryWorkflow (`pipelines.query.QuerySteps`) as a local
activity, its errors mapped to Temporal's retry semantics."""

from __future__ import annotations

from typing import Any

from temporalio import activity

from activities.errors import mapped
from contracts.query import (
    AnswerInput,
    AnswerOutput,
    ContextInput,
    ContextOutput,
    FindInput,
    FindOutput,
    GenerateInput,
    GenerateOutput,
    HopInput,
    HopOutput,
    RerankInput,
    RerankOutput,
    RetrieveInput,
    RetrieveOutput,
    ValidateInput,
    ValidateOutput,
)
from generation.verify import Verifier
from pipelines.query import QuerySteps

__all__ = ["QueryActivities"]


class QueryActivities:
    def __init__(self, steps: QuerySteps) -> None:
        self.steps = steps

    @property
    def verifier(self) -> Verifier | None:
        return self.steps.verifier

    def warm_up(self) -> None:
        self.steps.warm_up()

    @activity.defn(name="query.retrieve")
    @mapped
    def retrieve(self, inp: RetrieveInput) -> RetrieveOutput:
        return self.steps.retrieve(inp)

    @activity.defn(name="query.rerank")
    @mapped
    def rerank(self, inp: RerankInput) -> RerankOutput:
        return self.steps.rerank(inp)

    @activity.defn(name="query.hop")
    @mapped
    def hop(self, inp: HopInput) -> HopOutput:
        return self.steps.hop(inp)

    @activity.defn(name="query.context")
    @mapped
    def context(self, inp: ContextInput) -> ContextOutput:
        return self.steps.context(inp)

    @activity.defn(name="query.generate")
    @mapped
    def generate(self, inp: GenerateInput) -> GenerateOutput:
        return self.steps.generate(inp)

    @activity.defn(name="query.validate")
    @mapped
    def validate(self, inp: ValidateInput) -> ValidateOutput:
        return self.steps.validate(inp)

    @activity.defn(name="query.find")
    @mapped
    def find(self, inp: FindInput) -> FindOutput:
        return self.steps.find(inp)

    @activity.defn(name="query.answer")
    @mapped
    def answer(self, inp: AnswerInput) -> AnswerOutput:
        return self.steps.answer(inp)

    def all(self) -> list[Any]:
        # The separate steps stay registered while histories that ran them may still be replayed
        # or resumed (the `find-and-answer` patch, docs/concepts/durability-and-replay.md).
        return [
            self.find,
            self.answer,
            self.retrieve,
            self.rerank,
            self.hop,
            self.context,
            self.generate,
            self.validate,
        ]
