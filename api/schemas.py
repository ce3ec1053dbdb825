"""HTTP schemas, separate from workflow contracts so either can change without breaking the other."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class JobAccepted(BaseModel):
    job_id: str
    workflow_id: str
    status_url: str
    temporal_ui_url: str
    request_id: str
    correlation_id: str | None = None


class RemovedOut(BaseModel):
    versions: int
    points: int
    dedupe_entries: int
    blobs: int
    rehomed: int


class DocumentDeleted(BaseModel):
    doc_id: str
    status: str  # deleted | absent (nothing to remove: never ingested here, or deleted already)
    removed: RemovedOut
    workflow_id: str
    request_id: str


class TenantErasedOut(BaseModel):
    tenant: str
    documents: int
    points: int
    redis_keys: int
    blobs: int
    jobs: int
    workflow_id: str
    request_id: str


class FileResult(BaseModel):
    source: str
    status: str
    doc_id: str | None = None
    version: str | None = None
    chunks: int = 0
    duplicates: int = 0
    code: str | None = None
    message: str | None = None
    temporal_ui_url: str | None = None


class JobState(BaseModel):
    job_id: str
    tenant: str
    status: str
    counters: dict[str, int]
    files: list[FileResult]
    temporal_ui_url: str
    request_id: str


class QueryFiltersBody(BaseModel):
    sources: list[str] = []
    doc_ids: list[str] = []
    ingested_after: float | None = None
    ingested_before: float | None = None


class QueryBody(BaseModel):
    question: str
    filters: QueryFiltersBody | None = None
    mode: str = "hybrid"
    rerank: bool = True
    json_schema: dict[str, Any] | None = None
    max_output_tokens: int | None = None
    route: str | None = None
    cache: bool = True  # false: never answer from a cache (a fresh answer replaces the cached one)


class CitationOut(BaseModel):
    ref: int
    doc_id: str
    version: str
    source: str
    section_path: list[str]
    snippet: str


class AttemptOut(BaseModel):
    provider: str
    model: str
    outcome: str
    reason: str = ""
    ms: float = 0.0


class RewriteOut(BaseModel):
    """A follow-up made standalone before retrieval: what was asked, and what was answered."""

    asked: str
    question: str
    method: str  # context (from the earlier turns) | llm
    conversation_id: str = ""  # the durable conversation ("": history sent by the client)


class SecondHopOut(BaseModel):
    """What the second hop did: candidate titles the top passages held, and passages of the
    documents they name that joined the ranking."""

    names: int
    linked: int


class QueryAnswer(BaseModel):
    request_id: str
    correlation_id: str | None = None
    trace_id: str
    answer: str
    citations: list[CitationOut]
    degradations: list[str]
    timings_ms: dict[str, float]
    route: str
    provider: str
    model: str
    prompt_id: str
    prompt_hash: str
    tokens_in: int
    tokens_out: int
    cost_usd: float
    embedding_version: str
    supported_rate: float
    json_value: Any = None
    no_sources: bool
    clarifying: bool
    attempts: list[AttemptOut]
    question_pii: dict[str, int] = {}
    generation: int = 0  # the tenant's index generation the answer was read at
    cache: str = "miss"  # exact | semantic | snippet | miss
    prompt_label: str = ""  # how the prompt version was chosen: production | canary | default
    flags: list[str] = []  # guardrail findings (question_injection, sources_injection, output_blocked, ungrounded, ...)
    # where the citations came from: model (its own, checked), attributed (added by validation),
    # mixed, none
    citations_from: str = ""
    first_token_ms: float = 0.0  # from the generate step's start to the answer's first text
    rewrite: RewriteOut | None = None  # a conversation's follow-up, made standalone
    second_hop: SecondHopOut | None = None  # None: no second hop ran (off, skipped, or a cached answer)


class ChunkOut(BaseModel):
    index: int
    section_path: list[str]
    text: str


class DocumentOut(BaseModel):
    doc_id: str
    version: str
    source: str
    title: str
    chunks: list[ChunkOut]
    truncated: bool  # a very long document: its first chunks only


class ConversationBody(BaseModel):
    title: str = Field(default="", max_length=200)


class TurnOut(BaseModel):
    request_id: str
    asked: str
    question: str  # the standalone form it was answered as
    method: str
    answer: str
    answered: bool
    doc_ids: list[str]
    at: float


class ConversationOut(BaseModel):
    id: str
    title: str
    created_at: float
    updated_at: float
    turns: list[TurnOut] = []


class ConversationList(BaseModel):
    data: list[str]  # conversation ids, most recently active first


class FeedbackBody(BaseModel):
    request_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")  # the answer's, as it was sent
    rating: Literal["up", "down"]
    reason: str = Field(default="", max_length=500)
    correction: str = Field(default="", max_length=4000)


class FeedbackOut(BaseModel):
    request_id: str  # the answer's
    rating: str
    cache: str  # where the answer came from: exact | semantic | snippet | miss
    purged: bool  # rated down: the cache entries that would serve the answer again are gone
