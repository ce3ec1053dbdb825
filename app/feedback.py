"""Feedback on answers: what each answer was made of is recorded as it is sent, and feedback
names it by request id. A thumbs-down removes every cache entry that would serve the answer again
(a wrong answer is not served from a cache, and is generated afresh on a fresh retrieval)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis

from caches.entries import entry_digest, entry_key, forget_entry
from contracts.query import QueryInput, QueryOutput
from gateway.keys import Principal
from guardrails.pii import Redactor
from keel.errors import NotFound
from keel.text import check_text
from stores import feedback
from stores.feedback import AnswerRecord, Feedback

log = logging.getLogger("keel.feedback")


def answer_record(
    inp: QueryInput,
    out: QueryOutput,
    *,
    key_id: str,
    trace_id: str,
    exact_digest: str,
    served_question: str,
    at: float,
    ms: float = 0.0,
) -> AnswerRecord:
    """The record of an answer as sent, with the cache entries that would serve it again, named
    the way the layers name them: a paraphrase's, the semantic entry it matched; any other
    answer's, its exact entry, and the semantic and snippet entries of the (redacted) question it
    is kept under (`served_question` for an exact hit, else the question as asked)."""
    tenant, generation = inp.tenant, out.generation
    entries: list[str] = []
    if out.cache == "semantic":
        if inp.cache_scope:
            entries.append(
                entry_key(tenant, "semantic", entry_digest(inp.cache_scope, out.cached_question), generation)
            )
    elif generation > 0:
        question = served_question or inp.question
        if exact_digest:
            entries.append(entry_key(tenant, "exact", exact_digest, generation))
        if inp.cache_scope:
            entries.append(entry_key(tenant, "semantic", entry_digest(inp.cache_scope, question), generation))
        if inp.snippet_scope:
            entries.append(entry_key(tenant, "snippet", entry_digest(inp.snippet_scope, question), generation))
    return AnswerRecord(
        request_id=inp.request_id,
        key_id=key_id,
        cache=out.cache,
        cache_entries=entries,
        prompt_id=out.prompt_id,
        prompt_hash=out.prompt_hash,
        prompt_label=out.prompt_label,
        route=out.route,
        provider=out.provider,
        model=out.model,
        embedding_version=out.embedding_version,
        generation=out.generation,
        trace_id=trace_id,
        degraded=bool(out.degradations),
        at=at,
        answered=not (out.clarifying or out.no_sources) and "output_blocked" not in out.flags,
        ms=ms,
        cost_usd=out.cost_usd,
        json_error=out.json_error is not None,
        flags=list(out.flags),
    )


@dataclass(frozen=True, kw_only=True)
class FeedbackTaken:
    request_id: str
    rating: str
    cache: str  # where the answer came from
    purged: bool  # a cached answer flagged as wrong: its entry was removed


def give_feedback(
    r: redis.Redis,
    who: Principal,
    redactor: Redactor | None,
    *,
    request_id: str,
    rating: str,
    reason: str,
    correction: str,
    at: float,
) -> FeedbackTaken:
    """Keep the caller's feedback on one of its answers. Only the key that asked may give it: any
    other request id is not found, whether it exists or not."""
    about = feedback.answer(r, who.tenant, request_id)
    if about is None or about.key_id != who.key_id:
        raise NotFound(f"no answer {request_id!r} for this key (answers can be rated for 30 days)")
    check_text(reason, "the reason")  # free text from a user is checked and stored like a question
    check_text(correction, "the correction")
    if redactor is not None:
        reason, correction = redactor.redact(reason).text, redactor.redact(correction).text
    given = Feedback(request_id=request_id, rating=rating, reason=reason, correction=correction, at=at)
    feedback.give(r, who.tenant, given, about)
    purged = False
    if rating == "down" and about.cache_entries:
        purged = any([forget_entry(r, who.tenant, key) for key in about.cache_entries])
        log.info("cached answer %s flagged as wrong: entries removed=%s", request_id, purged)
    return FeedbackTaken(request_id=request_id, rating=rating, cache=about.cache, purged=purged)
