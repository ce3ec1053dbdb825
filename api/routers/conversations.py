"""/v1/conversations: durable conversations, one principal's each.

`POST` starts one; `POST /{id}/turns` asks its next question (the follow-up is made standalone
from the conversation's earlier turns before retrieval, and the answer says how: `rewrite`), and
`/{id}/turns/stream` streams it as `/v1/query/stream` does; `GET` lists the caller's live
conversations, `GET /{id}` reads one's kept turns, `DELETE /{id}` ends it and deletes its history.
A conversation of another key, or one that expired, is a 404 `conversation_not_found`.
"""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import StreamingResponse

from api.deps import ConversationCaller, RedisDep, SettingsDep, TemporalDep, on_edge
from api.routers.query import CallerDep, answered, sse_of, streamed
from api.schemas import ConversationBody, ConversationList, ConversationOut, QueryAnswer, QueryBody, TurnOut
from app import conversations
from app.conversations import Thread, check_conversation_id
from contracts.conversation import ConversationView

router = APIRouter(prefix="/v1/conversations", tags=["conversations"])


def _out(view: ConversationView) -> ConversationOut:
    return ConversationOut(
        id=view.conversation_id,
        title=view.title,
        created_at=view.created_at,
        updated_at=view.updated_at,
        turns=[TurnOut(**asdict(t)) for t in view.turns],
    )


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ConversationOut)
async def start(
    body: ConversationBody, settings: SettingsDep, temporal: TemporalDep, r: RedisDep, caller: ConversationCaller
) -> ConversationOut:
    return _out(await conversations.start(temporal, settings, r, caller, body.title))


@router.get("", response_model=ConversationList)
async def listed(request: Request, settings: SettingsDep, r: RedisDep, caller: ConversationCaller) -> ConversationList:
    return ConversationList(data=await on_edge(request, conversations.listed, r, settings, caller))


@router.get("/{conversation_id}", response_model=ConversationOut)
async def read(
    conversation_id: str, settings: SettingsDep, temporal: TemporalDep, r: RedisDep, caller: ConversationCaller
) -> ConversationOut:
    return _out(await conversations.read(temporal, settings, r, caller, conversation_id))


@router.delete("/{conversation_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete(
    conversation_id: str, settings: SettingsDep, temporal: TemporalDep, r: RedisDep, caller: ConversationCaller
) -> Response:
    await conversations.delete(temporal, settings, r, caller, conversation_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{conversation_id}/turns", response_model=QueryAnswer)
async def turn(
    conversation_id: str, body: QueryBody, request: Request, response: Response, who: CallerDep
) -> QueryAnswer:
    thread = Thread(conversation_id=check_conversation_id(conversation_id))
    answer, headers = await answered(body, request, who, thread)
    response.headers.update(headers)
    return answer


@router.post("/{conversation_id}/turns/stream")
async def turn_stream(conversation_id: str, body: QueryBody, request: Request, who: CallerDep) -> StreamingResponse:
    thread = Thread(conversation_id=check_conversation_id(conversation_id))
    events, headers = await streamed(body, request, who, thread)
    return StreamingResponse(sse_of(events), media_type="text/event-stream", headers=headers)
