"""ConversationWorkflow: one conversation of one principal, alive between its turns.

A turn is an Update: the follow-up is made standalone from the turns kept so far
(`conversations.rewrite`), then answered by QueryWorkflow as a child (the Temporal UI shows each
turn's query run with its steps), and the turn is kept. Turns run one at a time, in the order they
arrived. The kept turns fit a token budget (older ones are dropped), the run continues as new
every `turns_per_run` turns (50) or when Temporal suggests it, so its history never grows without
bound, and the conversation ends when it has been idle for its retention or is deleted. Its id is
`conversation/<tenant>/<id>`, so the codec seals its history with the tenant's key: the tenant's
erasure leaves every conversation unreadable.

Conversations live for weeks and cross deploys: with worker versioning, their workers
(`infra.worker`, their own task queue) upgrade them to new code at their next task (AUTO_UPGRADE),
so any change to what the workflow does is guarded by `workflow.patched`. The turn's QueryWorkflow
runs on the query task queue, pinned to the release that starts it, as every query is.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from functools import partial

from temporalio import workflow
from temporalio.exceptions import ApplicationError, FailureError
from temporalio.workflow import ParentClosePolicy

from workflows import policies
from workflows.policies import query_step

with workflow.unsafe.imports_passed_through():
    from activities.conversation import ConversationActivities
    from contracts.conversation import (
        ConversationStart,
        ConversationView,
        RewriteInput,
        RewriteOutput,
        TurnInput,
        TurnRecord,
    )
    from contracts.query import QueryInput, QueryOutput, QuestionRewrite
    from conversations.history import exchanges, kept_within, said_something
    from conversations.rewrite import rewrite
    from keel.ids import query_workflow_id


# A model's rewrite gets this long (a small local model writes a short question in about a second
# on a CPU); past it, the deterministic rewrite stands. The step's own timeout adds the grace.
REWRITE_BUDGET_MS = 2500
REWRITE_GRACE_MS = 500


@workflow.defn(name="Conversation", sandboxed=False)
class ConversationWorkflow:
    @workflow.init
    def __init__(self, start: ConversationStart) -> None:
        self._start = start
        self._turns: list[TurnRecord] = list(start.turns)
        self._lock = asyncio.Lock()  # one turn at a time: each reads the turns before it
        self._ended = False
        self._touched = 0  # turns taken in this run; the idle clock restarts at each
        self._updated_at = start.turns[-1].at if start.turns else start.created_at

    @workflow.run
    async def run(self, start: ConversationStart) -> None:
        idle = timedelta(seconds=start.retention_s)
        while not self._ended:
            try:
                await workflow.wait_condition(partial(self._moved, self._touched), timeout=idle)
            except TimeoutError:
                self._ended = True  # idle for its retention: it expires
                break
            if self._touched >= self._start.turns_per_run or workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(replace(self._start, turns=self._turns, runs=self._start.runs + 1))
        await workflow.wait_condition(workflow.all_handlers_finished)

    def _moved(self, since: int) -> bool:
        return self._ended or self._touched != since

    @workflow.update
    async def turn(self, inp: TurnInput) -> QueryOutput:
        async with self._lock:
            q, model_failed = await self._standalone(inp.query)
            out: QueryOutput = await workflow.execute_child_workflow(
                "Query",
                q,
                id=query_workflow_id(q.tenant, q.request_id),
                result_type=QueryOutput,
                task_queue=self._start.query_task_queue,
                # A turn whose caller went away still finishes: the answer is kept for the next.
                parent_close_policy=ParentClosePolicy.ABANDON,
            )
            self._turns.append(
                TurnRecord(
                    request_id=q.request_id,
                    asked=inp.query.question,
                    question=q.question,
                    method=q.rewrite.method if q.rewrite else "none",
                    answer=out.answer,
                    answered=said_something(out),
                    doc_ids=sorted({c.doc_id for c in out.citations}),
                    at=workflow.now().timestamp(),
                )
            )
            self._turns = kept_within(self._turns, self._start.history_tokens)
            self._updated_at = workflow.now().timestamp()
            self._touched += 1
            out.rewrite = q.rewrite
            if model_failed:  # the model's rewrite was not used: the deterministic one was
                out.degradations.append("rewrite_model_skipped")
            return out

    @turn.validator
    def _may_take(self, inp: TurnInput) -> None:
        # The edge checks the owner first; this refuses what reaches Temporal another way.
        if inp.owner != self._start.owner or inp.query.tenant != self._start.tenant:
            raise ApplicationError("not this principal's conversation", type="ConversationNotFound")
        if self._ended:
            raise ApplicationError("the conversation has ended", type="ConversationNotFound")

    @workflow.signal
    def end(self) -> None:
        """Deleted by its owner or with its tenant: the run ends once a turn in flight is done."""
        self._ended = True

    @workflow.query
    def view(self) -> ConversationView:
        s = self._start
        return ConversationView(
            conversation_id=s.conversation_id,
            owner=s.owner,
            title=s.title,
            created_at=s.created_at,
            updated_at=self._updated_at,
            turns=self._turns,
            ended=self._ended,
        )

    async def _standalone(self, q: QueryInput) -> tuple[QueryInput, bool]:
        """The question as QueryWorkflow answers it, a follow-up made standalone from the turns kept
        (by the tenant's model when one is wired), and whether a model's rewrite was not used."""
        s = self._start
        try:
            written = await query_step(
                ConversationActivities.rewrite,
                RewriteInput(question=q.question, turns=self._turns, topic=s.title, deadline_ms=REWRITE_BUDGET_MS),
                REWRITE_BUDGET_MS + REWRITE_GRACE_MS,
                retry=policies.NO_RETRY,
            )
        except FailureError:  # the step failed: the same deterministic rewrite, made here
            fallback = rewrite(q.question, exchanges(self._turns), topic=s.title)
            written = RewriteOutput(question=fallback.question, search=fallback.search, method=fallback.method)
        if written.method == "none":
            return q, False
        made = QuestionRewrite(
            asked=q.question,
            question=written.question,
            method=written.method,
            conversation_id=self._start.conversation_id,
        )
        return replace(q, question=written.question, search_text=written.search, rewrite=made), written.model_failed
