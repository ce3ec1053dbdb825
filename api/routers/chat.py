"""The OpenAI-compatible surface: `GET /v1/models` and `POST /v1/chat/completions`, so that chat
front ends, agent frameworks and the official SDKs can ask Keel's knowledge base as they ask a
model. Same keys, limits, admission, guardrails, caches and audit as `/v1/query`: a completion
is a query (`api.routers.query.answered`, `streamed`).

The question is the last user message. A client's system messages are not passed to the model
(the tenant's prompt releases govern what it is told), and earlier turns do not yet change what
is retrieved. Citations are `[n]` markers in the content and a structured `citations` field;
Keel's request id, degradations and cache layer ride in a `keel` field. Errors have OpenAI's
shape (`message`, `type`, `param`, `code`: Keel's code).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import QueryCaller, SettingsDep
from api.routers.query import CallerDep, answered, streamed
from api.schemas import QueryAnswer, QueryBody
from keel.config import Settings
from keel.errors import BadInput, ModelNotFound

router = APIRouter(prefix="/v1", tags=["openai"])
MODEL = "keel"
MAX_MESSAGES = 200


class TextPart(BaseModel):
    type: Literal["text"]
    text: str = Field(max_length=100_000)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")  # name, tool calls, ...: not used

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = Field(default=None)

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(part.text for part in self.content)


class ChatBody(BaseModel):
    model_config = ConfigDict(extra="ignore")  # temperature, top_p, seed...: the answering profile decides

    model: str = MODEL
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    stream: bool = False
    max_tokens: int | None = Field(default=None, ge=1, le=32_000)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=32_000)


def models(settings: Settings) -> list[str]:
    """`keel` (the default route), and `keel-<route>` for each route of the answering configuration."""
    return [MODEL, *(f"{MODEL}-{route}" for route in sorted(settings.routes))]


@router.get("/models")
async def list_models(settings: SettingsDep, _caller: QueryCaller) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"id": m, "object": "model", "created": 0, "owned_by": "keel"} for m in models(settings)],
    }


def _query_body(body: ChatBody, settings: Settings) -> QueryBody:
    if body.model not in models(settings):
        raise ModelNotFound(f"no model {body.model!r}: GET /v1/models lists them")
    asked = [m for m in body.messages if m.role == "user" and m.text().strip()]
    if not asked:
        raise BadInput("the messages hold no user message with text to answer")
    route = body.model.removeprefix(f"{MODEL}-") if body.model != MODEL else None
    return QueryBody(
        question=asked[-1].text(), max_output_tokens=body.max_completion_tokens or body.max_tokens, route=route
    )


def _keel(answer: QueryAnswer) -> dict[str, Any]:
    return {
        "request_id": answer.request_id,
        "trace_id": answer.trace_id,
        "degradations": answer.degradations,
        "cache": answer.cache,
        "route": answer.route,
        "provider": answer.provider,
        "no_sources": answer.no_sources,
    }


def completion(answer: QueryAnswer, model: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{answer.request_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer.answer, "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": answer.tokens_in,
            "completion_tokens": answer.tokens_out,
            "total_tokens": answer.tokens_in + answer.tokens_out,
        },
        "citations": [c.model_dump() for c in answer.citations],
        "keel": _keel(answer),
    }


@router.post("/chat/completions")
async def chat_completions(
    body: ChatBody, request: Request, response: Response, settings: SettingsDep, who: CallerDep
) -> Any:
    asked = _query_body(body, settings)
    if not body.stream:
        answer, headers = await answered(asked, request, who)
        response.headers.update(headers)
        return completion(answer, body.model)
    events, headers = await streamed(asked, request, who)
    chunks = _chunks(events, body.model, f"chatcmpl-{headers['X-Request-ID']}")
    return StreamingResponse(chunks, media_type="text/event-stream", headers=headers)


async def _chunks(events: AsyncIterator[tuple[str, Any]], model: str, cid: str) -> AsyncIterator[str]:
    """Keel's stream as OpenAI's chunks: the role first, each token a content delta, the whole
    answer's citations and usage on the last chunk, then `[DONE]`. A provider that failed mid-
    answer (`reset`) cannot take back what a client has shown: the next link's answer follows a
    line that says so. An error ends the stream with OpenAI's error object."""
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        data = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
            **extra,
        }
        return f"data: {json.dumps(data)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    async for event, data in events:
        if event == "token":
            yield chunk({"content": str(data)})
        elif event == "reset":
            yield chunk({"content": "\n\n[the answer restarts: a model failed mid-answer]\n\n"})
        elif event == "done":
            answer = QueryAnswer(**data)
            usage = {
                "prompt_tokens": answer.tokens_in,
                "completion_tokens": answer.tokens_out,
                "total_tokens": answer.tokens_in + answer.tokens_out,
            }
            citations = [c.model_dump() for c in answer.citations]
            yield chunk({}, "stop", usage=usage, citations=citations, keel=_keel(answer))
        elif event == "error":
            error = {"message": data.get("message", ""), "type": "server_error", "param": None, **data}
            yield f"data: {json.dumps({'error': error})}\n\n"
    yield "data: [DONE]\n\n"
