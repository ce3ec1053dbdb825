"""Starting a query: checks on the caller's input, then QueryWorkflow on the query task queue.

Shared by the API and the CLI so both refuse the same bad input with the same codes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import redis
from opentelemetry import trace
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.common import WorkflowIDReusePolicy
from temporalio.service import RPCError

from app import prompts as prompt_release
from contracts.query import QueryFilters, QueryInput, QueryOutput
from generation import schema
from guardrails import injection, moderation
from guardrails.pii import Redactor
from guardrails.pseudonyms import Pseudonyms, name_candidates, reveal, tokens_in
from index.catalog import Catalog
from keel.config import Settings
from keel.errors import (
    BadInput,
    EmptyQuestion,
    InvalidSchema,
    PromptInjection,
    QueryFailed,
    QuestionTooLong,
    RetrievalUnavailable,
    TemporalUnavailable,
    UnknownTenant,
    UnsafeContent,
)
from keel.ids import query_workflow_id
from keel.tenancy import check_groups, check_tenant
from keel.text import check_text
from retrieval.filters import check_filters
from retrieval.retriever import MODES
from stores import guard_policy, query_state
from stores.guard_policy import GuardPolicy
from stores.keys import query_candidates_key
from stores.pii_vault import PiiVault


def answer_config(settings: Settings) -> str:
    """A fingerprint of everything that shapes an answer besides the index and the request: the
    prompt templates, routes and providers, fusion and re-scoring, the budgets, the extractive
    answerer's version. A change of any of them is a new cache scope (`caches.exact`)."""
    from generation import prompts
    from generation.extractive import ExtractiveAnswerer

    material = {
        "prompts": {pid: prompts.load(pid).template for pid in (prompts.TEXT_PROMPT, prompts.JSON_PROMPT)},
        "routes": settings.routes,
        "providers": [{k: p.get(k) for k in ("name", "base_url", "model")} for p in settings.providers],
        "extractive": ExtractiveAnswerer.model,
        "fusion": [settings.fusion_method, settings.fusion_dense_weight, settings.rerank_model_path],
        "tokens": [settings.context_token_budget, settings.max_input_tokens, settings.max_output_tokens],
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()[:16]


def answer_scope(inp: QueryInput, config: str) -> dict[str, Any]:
    """What besides the question and the index an answer depends on (the exact cache's scope)."""
    return {
        "config": config,
        "filters": asdict(inp.filters),
        "mode": inp.mode,
        "rerank": inp.rerank,
        "format": inp.response_format,
        "schema": inp.json_schema,
        "route": inp.route,
        "max_output_tokens": inp.max_output_tokens,
        "sources": inp.guard_sources,
        "moderation": [inp.guard_moderation, inp.guard_severe],
        "prompt": inp.prompt_id,
    }


def retrieval_scope(inp: QueryInput, config: str) -> dict[str, Any]:
    """What besides the question and the index retrieval and re-scoring depend on (the snippet
    cache's scope: an answer's format or length does not change what is found)."""
    return {
        "layer": "snippet",
        "config": config,
        "filters": asdict(inp.filters),
        "mode": inp.mode,
        "rerank": inp.rerank,
    }


def pseudonymise_question(
    inp: QueryInput, redactor: Redactor, vault: PiiVault, actions: Mapping[str, str] | None = None
) -> tuple[QueryInput, dict[str, str]]:
    """The input with the tenant's pseudonyms for the names in its question (and a follow-up's
    search text): what the detector finds, and the names the tenant's documents hold that it
    missed, found by their tokens in the vault. Returns the question's own tokens -> originals,
    which the edge keeps for this request only (to reveal them in its answer)."""
    names = Pseudonyms(vault.secret(inp.tenant), actions)  # the tenant's actions, as its documents had them
    texts = [inp.question, *([inp.search_text] if inp.search_text else [])]
    done = redactor.redact_many(texts, names)
    tokens: dict[str, str] = {}
    out_texts = []
    for d in done:
        text, known = _known_names(d.text, names, vault, inp.tenant)
        tokens.update(d.tokens)
        tokens.update(known)
        out_texts.append(text)
    out = replace(inp, question=out_texts[0], question_pii=done[0].counts)
    if inp.search_text:
        out.search_text = out_texts[1]
    if inp.rewrite is not None:
        asked = _known_names(redactor.redact_many([inp.rewrite.asked], names)[0].text, names, vault, inp.tenant)[0]
        out.rewrite = replace(inp.rewrite, asked=asked, question=out_texts[0])
    return out, tokens


def _known_names(text: str, names: Pseudonyms, vault: PiiVault, tenant: str) -> tuple[str, dict[str, str]]:
    """`text` with the names the tenant's documents hold replaced by their tokens (longest first)."""
    spans = name_candidates(text)
    if not spans:
        return text, {}
    tokens = [names.token("PERSON", text[a:b]) for a, b in spans]
    known = vault.known(tenant, tokens)
    taken: list[tuple[int, int, str]] = []
    for (a, b), token in zip(spans, tokens, strict=True):
        if token in known and all(b <= x or a >= y for x, y, _ in taken):
            taken.append((a, b, token))
    found = {token: text[a:b] for a, b, token in taken}
    for a, b, token in sorted(taken, reverse=True):
        text = text[:a] + token + text[b:]
    return text, found


def reveal_output(out: QueryOutput, originals: dict[str, str]) -> QueryOutput:
    """The answer with pseudonym tokens turned back into names (`originals`), in its text, its
    citations' snippets and its rewrite; a token without an original reads as a plain label."""
    citations = [replace(c, snippet=reveal(c.snippet, originals)) for c in out.citations]
    rewrite = out.rewrite
    if rewrite is not None:
        rewrite = replace(rewrite, asked=reveal(rewrite.asked, originals), question=reveal(rewrite.question, originals))
    return replace(out, answer=reveal(out.answer, originals), citations=citations, rewrite=rewrite)


def output_tokens(out: QueryOutput) -> list[str]:
    """Every pseudonym token an answer holds (its text, snippets and rewrite)."""
    texts = [out.answer, *(c.snippet for c in out.citations)]
    if out.rewrite is not None:
        texts += [out.rewrite.asked, out.rewrite.question]
    return tokens_in("\n".join(texts))


def protect_question(
    inp: QueryInput, redactor: Redactor, vault: PiiVault | None, r: redis.Redis, settings: Settings
) -> tuple[QueryInput, dict[str, str]]:
    """The input as the edge sends it to its workflow: the question redacted, or, with a vault,
    pseudonymised under the tenant's per-type PII actions; and the question's own tokens -> names."""
    if vault is None:
        return redact_question(inp, redactor), {}
    actions = guard_policy.read(r, inp.tenant, default_guard_policy(settings)).pii_actions()
    return pseudonymise_question(inp, redactor, vault, actions)


def redact_question(inp: QueryInput, redactor: Redactor) -> QueryInput:
    """The input with its question redacted (before a workflow, trace, log or provider sees it)."""
    redacted = redactor.redact(inp.question)
    out = replace(inp, question=redacted.text, question_pii=redacted.counts)
    if inp.search_text:  # a follow-up's context: earlier questions and answers, the client's words
        out.search_text = redactor.redact(inp.search_text).text
    if inp.rewrite is not None:
        out.rewrite = replace(inp.rewrite, asked=redactor.redact(inp.rewrite.asked).text, question=redacted.text)
    return out


def build_query(
    settings: Settings,
    r: redis.Redis,
    request_id: str,
    tenant: str,
    groups: list[str],
    question: str,
    filters: QueryFilters | None = None,
    *,
    mode: str = "hybrid",
    rerank: bool = True,
    answer: bool = True,
    json_schema: dict[str, Any] | None = None,
    max_output_tokens: int | None = None,
    route: str | None = None,
    stream: bool = False,
    redactor: Redactor | None = None,
    key_id: str = "",
) -> QueryInput:
    """The checked workflow input. With a `redactor` (the API's and the CLI's, by default) the
    question is redacted here, before the workflow input, traces, logs or a provider see it."""
    tenant = check_tenant(tenant)
    groups = check_groups(groups)
    check_text(question or "", "the question")
    if not question or not question.strip():
        raise EmptyQuestion("the question is empty")
    if len(question) > settings.max_question_chars:
        raise QuestionTooLong(
            f"the question is {len(question):,} characters; the limit is {settings.max_question_chars:,}"
        )
    _check_options(settings, mode, route, json_schema, max_output_tokens)
    checked = check_filters(filters or QueryFilters())
    if not Catalog(r).has_tenant(tenant):
        raise UnknownTenant(f"tenant {tenant!r} has never ingested a document")
    policy = guard_policy.read(r, tenant, default_guard_policy(settings))
    # The schema's titles and descriptions reach the model beside the question: screened with it.
    flags = screen_question(
        question if json_schema is None else "\n".join([question, *schema.strings(json_schema)]), policy
    )
    release = prompt_release.assign(r, tenant, key_id, json_answer=json_schema is not None)
    question, pii = question.strip(), {}
    if redactor is not None:
        redacted = redactor.redact(question)
        question, pii = redacted.text, redacted.counts
    return QueryInput(
        request_id=request_id,
        tenant=tenant,
        groups=groups,
        question=question,
        question_pii=pii,
        filters=checked,
        mode=mode,
        rerank=rerank,
        answer=answer,
        response_format="json" if json_schema is not None else "text",
        json_schema=json_schema,
        route=route,
        stream=stream,
        max_output_tokens=max_output_tokens,
        budgets_ms=dict(settings.query_budgets_ms),
        guard_sources=policy.sources,
        guard_moderation=policy.moderation,
        guard_severe=policy.severe,
        guard_grounding=policy.grounding,
        flags=flags,
        prompt_id=release.prompt_id,
        prompt_label=release.label,
        second_hop=settings.second_hop,
    )


def default_guard_policy(settings: Settings) -> GuardPolicy:
    return guard_policy.defaults(settings)


def screen_question(question: str, policy: GuardPolicy) -> list[str]:
    """The question's guardrail flags; a question that reads as instructions to the model is
    refused when the tenant's policy says so (before it is redacted, stored or run)."""
    verdict = injection.shipped().check(question)
    span = trace.get_current_span()
    span.add_event(
        "apply_guardrail",
        {
            "gen_ai.guardrail.name": "prompt_injection",
            "gen_ai.guardrail.target": "question",
            "gen_ai.guardrail.score": verdict.score,
            "gen_ai.guardrail.decision": ("refuse" if policy.questions == "refuse" else "flag")
            if verdict.flagged
            else "pass",
        },
    )
    flags = moderate(question, policy, "question")
    if not verdict.flagged:
        return flags
    if policy.questions == "refuse":
        raise PromptInjection(
            "the question reads as instructions to the assistant rather than a question "
            f"({', '.join(verdict.families)}); this tenant refuses such questions"
        )
    return ["question_injection", *flags]


def moderate(text: str, policy: GuardPolicy, target: str) -> list[str]:
    """`moderation:<category>` flags for a question, or an UnsafeContent refusal when the tenant's
    policy refuses one of its categories (the severe ones and the rest each have an action)."""
    found = moderation.shipped().check(text).flagged
    acted = moderation.actions(found, policy.moderation, policy.severe)
    refused = sorted(c for c, action in acted.items() if action == "refuse")
    trace.get_current_span().add_event(
        "apply_guardrail",
        {
            "gen_ai.guardrail.name": "moderation",
            "gen_ai.guardrail.target": target,
            "gen_ai.guardrail.categories": found,
            "gen_ai.guardrail.decision": "refuse" if refused else ("flag" if found else "pass"),
        },
    )
    if refused:
        raise UnsafeContent(f"this question can't be answered here: it was flagged as {', '.join(refused)} content")
    return [f"moderation:{c}" for c, action in acted.items() if action == "flag"]


PROMPT_OVERHEAD_TOKENS = 200  # instructions and citation markers around the question and passages


def reserve_tokens(
    settings: Settings, question: str, max_output_tokens: int | None, json_schema: dict[str, Any] | None = None
) -> int:
    """What a query may spend at most, reserved against a tokens-a-minute limit at admission:
    its prompt (question, schema, a full context, the instructions) and its whole output allowance."""
    asked = len(question) + (len(json.dumps(json_schema)) if json_schema is not None else 0)
    prompt = asked // 3 + settings.context_token_budget + PROMPT_OVERHEAD_TOKENS
    output = min(max_output_tokens or settings.max_output_tokens, settings.max_output_tokens)
    return prompt + output


def _check_options(
    settings: Settings, mode: str, route: str | None, json_schema: dict[str, Any] | None, max_output_tokens: int | None
) -> None:
    if mode not in MODES:
        raise BadInput(f"mode must be one of {', '.join(MODES)}")
    if route is not None and route not in settings.routes:
        raise BadInput(f"route must be one of {', '.join(sorted(settings.routes))}")
    if json_schema is not None:
        try:
            schema.check(json_schema)
        except schema.SchemaRefused as exc:
            raise InvalidSchema(f"json_schema is refused: {exc}") from None
    if max_output_tokens is not None and not 1 <= max_output_tokens <= settings.max_output_tokens:
        raise BadInput(f"max_output_tokens must be between 1 and {settings.max_output_tokens}")


async def run_query(client: Client, settings: Settings, inp: QueryInput) -> QueryOutput:
    try:
        handle = await client.start_workflow(
            "Query",
            inp,
            id=query_workflow_id(inp.tenant, inp.request_id),
            task_queue=settings.query_task_queue,
            result_type=QueryOutput,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            # With a worker on this client (infra.server), the start response carries the first
            # workflow task and the query runs at once instead of waiting for the server to
            # dispatch it; without one, this is a plain start.
            request_eager_start=True,
        )
        # On the caller's span: an operator can see whether queries start eagerly here.
        trace.get_current_span().set_attribute("keel.eager_start", started_eagerly(handle))
        out: QueryOutput = await handle.result()
    except WorkflowFailureError as exc:
        raise QueryFailed(f"the query workflow failed: {exc.cause or exc}") from exc
    except RPCError as exc:  # Temporal went away during the request
        raise TemporalUnavailable(f"Temporal is unreachable: {exc.message}") from exc
    return honest(out)


# Degradations that mean the passages were never looked at: answering "no sources" would be a lie.
RETRIEVAL_LOST = ("retrieve_failed", "context_failed")


def honest(out: QueryOutput) -> QueryOutput:
    """A query whose retrieval failed or ran out of time is an outage (503), not "nothing matched"."""
    lost = [d for d in out.degradations if d in RETRIEVAL_LOST]
    if lost:
        raise RetrievalUnavailable(f"retrieval did not complete ({', '.join(lost)}); retry shortly")
    return out


def started_eagerly(handle: WorkflowHandle[Any, Any]) -> bool:
    # temporalio records it under this name on the handle (client/_impl.py); no public accessor yet.
    return bool(getattr(handle, "__temporal_eagerly_started", False))


@dataclass(frozen=True, kw_only=True)
class Passage:
    """A retrieved chunk as a search returns it: what it says, where it is, how it ranked."""

    rank: int
    score: float
    doc_id: str
    version: str
    source: str
    title: str
    section_path: list[str]
    chunk_index: int
    text: str


def passages_of(r: redis.Redis, inp: QueryInput, ranking: str, limit: int) -> list[Passage]:
    """The best `limit` of a finished retrieval-only query's ranking, with their text."""
    ranked = query_state.final_ranking(r, inp.tenant, inp.request_id, ranking)[:limit]
    found = query_state.candidates(r, query_candidates_key(inp.tenant, inp.request_id), [s.point_id for s in ranked])
    return [
        Passage(
            rank=i + 1,
            score=round(s.rerank if s.rerank is not None else s.fused, 4),
            doc_id=c.doc_id,
            version=c.version,
            source=c.source,
            title=c.title,
            section_path=c.section_path,
            chunk_index=c.chunk_index,
            text=c.text,
        )
        for i, s in enumerate(ranked)
        if (c := found.get(s.point_id)) is not None
    ]
