"""Conversations: start one, take a turn in it, read, list and delete them, for their owner only.

A durable conversation is a ConversationWorkflow (`workflows.conversation`) on the query task
queue, owned by the principal (API key) that started it; the owner's index in Redis
(`stores.conversations`) lists them and answers the owner check in one read, so another
principal's conversation is a 404 before Temporal is asked. A client that keeps its own history
(the chat-completions route without a `conversation_id`) sends the earlier turns instead:
`with_history` rewrites its follow-up at the edge, with no workflow state.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace

import redis
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from app.query import honest
from contracts.conversation import ConversationStart, ConversationView, TurnInput
from contracts.query import QueryInput, QueryOutput, QuestionRewrite
from conversations.rewrite import Exchange, rewrite
from gateway.keys import Principal
from keel.config import Settings
from keel.errors import BadInput, ConversationNotFound, QueryFailed, TemporalUnavailable
from stores import conversations as index

_ID = re.compile(r"^[0-9a-f]{32}$")
MAX_TITLE = 200


def conversation_workflow_id(tenant: str, conversation_id: str) -> str:
    return f"conversation/{tenant}/{conversation_id}"


def check_conversation_id(conversation_id: str) -> str:
    if not _ID.match(conversation_id):
        raise BadInput("a conversation id is 32 hex characters (the `id` POST /v1/conversations returned)")
    return conversation_id


@dataclass(frozen=True, kw_only=True)
class Thread:
    """How a question joins a conversation: the earlier turns a stateless client sent, or the id
    of a durable conversation (whose workflow holds the turns)."""

    history: tuple[Exchange, ...] = ()
    conversation_id: str = ""


def with_history(inp: QueryInput, history: Sequence[Exchange]) -> QueryInput:
    """A stateless client's follow-up, made standalone from the earlier turns it sent."""
    written = rewrite(inp.question, history)
    if written.method == "none":
        return inp
    made = QuestionRewrite(asked=inp.question, question=written.question, method=written.method)
    return replace(inp, question=written.question, search_text=written.search, rewrite=made)


async def start(
    client: Client, settings: Settings, r: redis.Redis, who: Principal, title: str = ""
) -> ConversationView:
    if len(title) > MAX_TITLE:
        raise BadInput(f"a title is at most {MAX_TITLE} characters")
    began = ConversationStart(
        tenant=who.tenant,
        conversation_id=uuid.uuid4().hex,
        owner=who.key_id,
        created_at=time.time(),
        retention_s=settings.conversation_retention_s,
        history_tokens=settings.conversation_history_tokens,
        title=title,
        query_task_queue=settings.query_task_queue,
    )
    try:
        await client.start_workflow(
            "Conversation",
            began,
            id=conversation_workflow_id(who.tenant, began.conversation_id),
            task_queue=settings.conversation_queue,
        )
    except RPCError as exc:
        raise TemporalUnavailable(f"Temporal is unreachable: {exc.message}") from exc
    index.add(r, who.tenant, who.key_id, began.conversation_id, at=began.created_at)
    return ConversationView(
        conversation_id=began.conversation_id,
        owner=began.owner,
        title=title,
        created_at=began.created_at,
        updated_at=began.created_at,
        turns=[],
    )


def _owned(r: redis.Redis, settings: Settings, who: Principal, conversation_id: str) -> str:
    check_conversation_id(conversation_id)
    if not index.owns(r, who.tenant, who.key_id, conversation_id, settings.conversation_retention_s):
        raise ConversationNotFound(f"no conversation {conversation_id} of this key")
    return conversation_workflow_id(who.tenant, conversation_id)


async def take_turn(
    client: Client, settings: Settings, r: redis.Redis, who: Principal, conversation_id: str, inp: QueryInput
) -> QueryOutput:
    """The question answered as the conversation's next turn (its follow-up made standalone there)."""
    handle = client.get_workflow_handle(_owned(r, settings, who, conversation_id))
    try:
        out = await handle.execute_update("turn", TurnInput(query=inp, owner=who.key_id), result_type=QueryOutput)
    except WorkflowUpdateFailedError as exc:
        cause: BaseException | None = exc.cause
        while cause is not None and not isinstance(cause, ApplicationError):
            cause = cause.__cause__  # the validator's refusal, under the update's failure
        if isinstance(cause, ApplicationError) and cause.type == "ConversationNotFound":
            raise ConversationNotFound(f"conversation {conversation_id} has ended") from exc
        raise QueryFailed(f"the conversation's turn failed: {cause or exc}") from exc
    except RPCError as exc:
        raise _rpc(exc, conversation_id) from exc
    index.touch(r, who.tenant, who.key_id, conversation_id)
    return honest(out)


async def read(
    client: Client, settings: Settings, r: redis.Redis, who: Principal, conversation_id: str
) -> ConversationView:
    handle = client.get_workflow_handle(_owned(r, settings, who, conversation_id))
    try:
        view: ConversationView = await handle.query("view", result_type=ConversationView)
    except RPCError as exc:
        raise _rpc(exc, conversation_id) from exc
    if view.ended:
        raise ConversationNotFound(f"conversation {conversation_id} has ended")
    return view


def listed(r: redis.Redis, settings: Settings, who: Principal) -> list[str]:
    return index.listed(r, who.tenant, who.key_id, settings.conversation_retention_s)


async def delete(client: Client, settings: Settings, r: redis.Redis, who: Principal, conversation_id: str) -> None:
    """The conversation and its history, gone: the workflow is ended and its history deleted."""
    workflow_id = _owned(r, settings, who, conversation_id)
    try:
        await client.workflow_service.delete_workflow_execution(
            DeleteWorkflowExecutionRequest(
                namespace=client.namespace, workflow_execution=WorkflowExecution(workflow_id=workflow_id)
            )
        )
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:  # already gone: the deletion is done
            raise _rpc(exc, conversation_id) from exc
    index.remove(r, who.tenant, who.key_id, conversation_id)


def _rpc(exc: RPCError, conversation_id: str) -> Exception:
    if exc.status == RPCStatusCode.NOT_FOUND:
        return ConversationNotFound(f"conversation {conversation_id} has ended")
    return TemporalUnavailable(f"Temporal is unreachable: {exc.message}")
