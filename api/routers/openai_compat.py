"""The OpenAI-compatible surface: `GET /v1/models`, `POST /v1/chat/completions` and
`POST /v1/embeddings`, so that chat
front ends, agent frameworks and the official SDKs can ask Keel's knowledge base as they ask a
model. Same keys, limits, admission, guardrails, caches and audit as `/v1/query`: a completion
is a query (`api.routers.query.answered`, `streamed`).

The question is the last user message. A client's system messages are not passed to the model
(the tenant's prompt releases govern what it is told). The earlier user and assistant messages
are the conversation so far: a follow-up is made standalone from them before retrieval
(`conversations.rewrite`), and the answer's `keel.rewrite` says how. A client that names a durable
conversation (`conversation_id`, from `POST /v1/conversations`) sends only its new question; the
conversation holds the rest. Citations are `[n]` markers in the content and a structured `citations` field;
Keel's request id, degradations and cache layer ride in a `keel` field. Errors have OpenAI's
shape (`message`, `type`, `param`, `code`: Keel's code).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import QueryCaller, SettingsDep, on_edge
from api.errors import request_id
from api.routers.query import CallerDep, answered, streamed
from api.schemas import QueryAnswer, QueryBody
from app.conversations import Thread, check_conversation_id
from conversations.rewrite import Exchange
from index.catalog import Catalog
from keel.config import Settings
from keel.errors import BadInput, EmbeddingsUnavailable, ModelNotFound, UnknownTenant

router = APIRouter(prefix="/v1", tags=["openai"])
MODEL = "keel"
MAX_MESSAGES = 200
MAX_HISTORY = 20  # earlier turns a follow-up's rewrite reads (it uses the last few anyway)
MAX_EMBED_INPUTS = 256
MAX_EMBED_CHARS = 32_000


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
    conversation_id: str | None = None  # a durable conversation's (the SDKs send it in `extra_body`)
    cache: bool = True  # false: never answer from a cache, as /v1/query's `cache` (also `extra_body`)


def models(settings: Settings) -> list[str]:
    """`keel` (the default route), and `keel-<route>` for each route of the answering configuration."""
    return [MODEL, *(f"{MODEL}-{route}" for route in sorted(settings.routes))]


@router.get("/models")
async def list_models(settings: SettingsDep, _caller: QueryCaller) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"id": m, "object": "model", "created": 0, "owned_by": "keel"} for m in models(settings)],
    }


def _query_body(body: ChatBody, settings: Settings) -> tuple[QueryBody, Thread]:
    if body.model not in models(settings):
        raise ModelNotFound(f"no model {body.model!r}: GET /v1/models lists them")
    asked = [i for i, m in enumerate(body.messages) if m.role == "user" and m.text().strip()]
    if not asked:
        raise BadInput("the messages hold no user message with text to answer")
    route = body.model.removeprefix(f"{MODEL}-") if body.model != MODEL else None
    question = body.messages[asked[-1]].text()
    if body.conversation_id is not None:
        thread = Thread(conversation_id=check_conversation_id(body.conversation_id))
    else:
        thread = Thread(history=tuple(history(body.messages[: asked[-1]]))[-MAX_HISTORY:])
    tokens = body.max_completion_tokens or body.max_tokens
    return QueryBody(question=question, max_output_tokens=tokens, route=route, cache=body.cache), thread


def history(messages: list[ChatMessage]) -> list[Exchange]:
    """The earlier turns: each user message with the assistant's reply that followed it."""
    turns: list[Exchange] = []
    for i, message in enumerate(messages):
        if message.role != "user" or not message.text().strip():
            continue
        after = messages[i + 1] if i + 1 < len(messages) else None
        reply = after.text() if after is not None and after.role == "assistant" else ""
        turns.append(Exchange(question=message.text(), answer=reply, answered=bool(reply.strip())))
    return turns


def _keel(answer: QueryAnswer) -> dict[str, Any]:
    return {
        "request_id": answer.request_id,
        "trace_id": answer.trace_id,
        "degradations": answer.degradations,
        "cache": answer.cache,
        "route": answer.route,
        "provider": answer.provider,
        "no_sources": answer.no_sources,
        "rewrite": answer.rewrite.model_dump() if answer.rewrite else None,
    }


def _usage(answer: QueryAnswer) -> dict[str, int]:
    return {
        "prompt_tokens": answer.tokens_in,
        "completion_tokens": answer.tokens_out,
        "total_tokens": answer.tokens_in + answer.tokens_out,
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
        "usage": _usage(answer),
        "citations": [c.model_dump() for c in answer.citations],
        "keel": _keel(answer),
    }


@router.post("/chat/completions")
async def chat_completions(
    body: ChatBody, request: Request, response: Response, settings: SettingsDep, who: CallerDep
) -> Any:
    asked, thread = _query_body(body, settings)
    if not body.stream:
        answer, headers = await answered(asked, request, who, thread)
        response.headers.update(headers)
        return completion(answer, body.model)
    events, headers = await streamed(asked, request, who, thread)
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
            usage = _usage(answer)
            citations = [c.model_dump() for c in answer.citations]
            yield chunk({}, "stop", usage=usage, citations=citations, keel=_keel(answer))
        elif event == "error":
            error = {"message": data.get("message", ""), "type": "server_error", "param": None, **data}
            yield f"data: {json.dumps({'error': error})}\n\n"
    yield "data: [DONE]\n\n"


class EmbeddingsBody(BaseModel):
    model_config = ConfigDict(extra="ignore")  # user, dimensions: not used

    model: str = MODEL
    input: str | list[str] = Field(min_length=1, max_length=MAX_EMBED_INPUTS)
    encoding_format: Literal["float", "base64"] = "float"  # base64: little-endian float32, as the SDKs ask

    def texts(self) -> list[str]:
        texts = [self.input] if isinstance(self.input, str) else self.input
        if any(not t or len(t) > MAX_EMBED_CHARS for t in texts):
            raise BadInput(f"each input is 1 to {MAX_EMBED_CHARS} characters")
        return texts


@router.post("/embeddings")
async def embeddings(body: EmbeddingsBody, request: Request, response: Response, who: CallerDep) -> dict[str, Any]:
    """The texts embedded with the tenant's active encoder, as its chunks are: vectors in the space
    the tenant's index searches (`model` in the reply names the encoder's version)."""
    if body.model != MODEL:
        raise ModelNotFound(f"no embedding model {body.model!r}: use {MODEL!r}, the tenant's active encoder")
    texts = body.texts()
    if who.indexes is None:
        raise EmbeddingsUnavailable("this API process has no encoder: ask one that shares the workers' indexes")
    async with who.admission.slot(who.tenant):
        ticket = await on_edge(request, who.admit, request_id(request), " ".join(texts), 1)
        try:
            if not await asyncio.to_thread(Catalog(who.redis).has_tenant, who.tenant):
                raise UnknownTenant(f"tenant {who.tenant!r} has never ingested a document")
            index = await asyncio.to_thread(who.indexes.active, who.tenant)
            tokens = await asyncio.to_thread(index.embedder.count_tokens, texts)
            vectors = await asyncio.to_thread(index.embedder.embed, texts, interactive=True)
        finally:
            await on_edge(request, who.settle, ticket, None)
    response.headers.update(ticket.headers)
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": _encoded(v, body.encoding_format)}
            for i, v in enumerate(vectors)
        ],
        "model": index.version.key,
        "usage": {"prompt_tokens": sum(tokens), "total_tokens": sum(tokens)},
    }


def _encoded(vector: np.ndarray, encoding: str) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
    return [float(x) for x in vector]
