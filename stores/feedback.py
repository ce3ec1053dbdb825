"""Answers' records and the feedback given on them, per tenant.

Every answer the edge sends is recorded (`record`) under its request id: the key that asked, where
it came from (a cache layer and the entry that served it) and what made it (prompt, route,
provider, model, index version and generation, trace): never the question or the answer text.
Feedback names an answer by its request id, and only the key that asked may give it
(`app.feedback`); it is kept with the answer's record beside it, so it is tied to the versions
that made the answer. Records expire after ANSWER_TTL_S; feedback stays until the tenant's erasure.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from stores.keys import answer_key, feedback_key

ANSWER_TTL_S = 30 * 24 * 3600  # how long an answer can be given feedback


@dataclass(frozen=True, kw_only=True)
class AnswerRecord:
    request_id: str
    key_id: str
    cache: str  # exact | semantic | snippet | miss
    cache_entries: list[str]  # the Redis keys of the cache entries that would serve it again
    prompt_id: str
    prompt_hash: str
    prompt_label: str
    route: str
    provider: str
    model: str
    embedding_version: str
    generation: int
    trace_id: str
    degraded: bool
    at: float
    # What `keel report ab` compares: an answer given (not a decline or a clarifying question),
    # its latency through the edge, its cost, and whether its JSON failed.
    answered: bool = True
    ms: float = 0.0
    cost_usd: float = 0.0
    json_error: bool = False
    flags: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class Feedback:
    request_id: str
    rating: str  # up | down
    reason: str  # redacted
    correction: str  # redacted
    at: float


def record(r: redis.Redis, tenant: str, answer: AnswerRecord) -> None:
    r.set(answer_key(tenant, answer.request_id), json.dumps(asdict(answer)), ex=ANSWER_TTL_S)


def answer(r: redis.Redis, tenant: str, request_id: str) -> AnswerRecord | None:
    raw = r.get(answer_key(tenant, request_id))
    return AnswerRecord(**json.loads(str(raw))) if raw else None


def give(r: redis.Redis, tenant: str, feedback: Feedback, about: AnswerRecord) -> None:
    """Keep the feedback with the answer's record (a second one on the same answer replaces it)."""
    r.hset(feedback_key(tenant), feedback.request_id, json.dumps({"answer": asdict(about), **asdict(feedback)}))


def given(r: redis.Redis, tenant: str) -> list[dict[str, Any]]:
    """The tenant's feedback, oldest first."""
    items = [json.loads(v) for v in r.hvals(feedback_key(tenant))]
    return sorted(items, key=lambda f: float(f["at"]))
