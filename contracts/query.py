"""QueryWorkflow and query activity contracts: one dataclass in and one out per step.

The retrieved candidates (chunk text and payload) and each step's ranking of them go to Redis
under the request's key (`stores.query_state`); the workflow passes the key, the ranking's name and
the top few scores between steps. Its history stays a few kilobytes, and replaying or converting
it stays cheap: a hundred nested dataclasses per step cost tens of milliseconds in Temporal's
data converter (measured by bench-query). Only the packed context, which the prompt is made of,
is in the history. New fields get defaults so running workflows
keep decoding old payloads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(kw_only=True)
class QueryFilters:
    sources: list[str] = field(default_factory=list)
    doc_ids: list[str] = field(default_factory=list)
    ingested_after: float | None = None  # unix seconds
    ingested_before: float | None = None


@dataclass(kw_only=True)
class QuestionRewrite:
    """A follow-up made standalone (`conversations.rewrite`): recorded on its answer."""

    asked: str  # the follow-up as the caller asked it (redacted)
    question: str  # the standalone question the answer answers
    method: str  # "context" (deterministic, from the earlier turns) | "llm"
    conversation_id: str = ""  # the durable conversation's id ("": history sent by the client)


@dataclass(kw_only=True)
class QueryInput:
    request_id: str
    tenant: str
    groups: list[str]
    question: str
    filters: QueryFilters = field(default_factory=QueryFilters)
    mode: str = "hybrid"  # hybrid | dense | bm25
    rerank: bool = True
    answer: bool = True  # False: retrieval, rerank and context only (evaluation)
    response_format: str = "text"  # text | json
    json_schema: dict[str, Any] | None = None
    route: str | None = None  # force a route by name; None lets the router choose
    stream: bool = False  # publish tokens and events to the request's Redis stream
    max_output_tokens: int | None = None
    context_tokens: int | None = None  # None: Settings.context_token_budget
    budgets_ms: dict[str, float] = field(default_factory=dict)  # step -> deadline; defaults in policies
    question_pii: dict[str, int] = field(default_factory=dict)  # what was redacted from the question
    # The answer cache (caches/): the scope's digest ("" : no semantic layer for this query), and
    # whether a cached answer may be served (False: answer afresh; the fresh answer is kept).
    cache_scope: str = ""
    cache_read: bool = True
    # The snippet cache's scope ("": none): what retrieval and re-scoring found for this question
    # in it may stand in for both (`caches.snippets`).
    snippet_scope: str = ""
    # Guardrails: what the tenant's policy lets a flagged source chunk do (quote | exclude | allow),
    # and what was flagged on the question before the workflow (e.g. "question_injection").
    guard_sources: str = "quote"
    guard_moderation: str = "flag"  # unsafe content in the answer: allow | flag | refuse
    guard_severe: str = "refuse"  # its severe forms
    guard_grounding: str = "flag"  # an answer with claims no passage supports: flag | retry | extractive
    flags: list[str] = field(default_factory=list)
    # The prompt release the caller was assigned (stores.prompt_releases): a version and its label.
    prompt_id: str = ""
    prompt_label: str = ""
    # A conversation's follow-up: what retrieval looks for (the standalone question with the
    # conversation's context; "": the question), and how the question was rewritten.
    search_text: str = ""
    rewrite: QuestionRewrite | None = None
    # The second hop (`retrieval.links`): after re-scoring, the documents the top passages name by
    # title join the ranking. Off for a query that was started before it existed.
    second_hop: bool = False

    def retrieval_text(self) -> str:
        """What retrieval, re-scoring and the caches key on."""
        return self.search_text or self.question


@dataclass(kw_only=True)
class Scored:
    """A candidate as the workflow sees it: its id and every score it has so far."""

    point_id: str
    doc_id: str
    dense: float | None = None
    sparse: float | None = None
    fused: float = 0.0
    rerank: float | None = None


@dataclass(kw_only=True)
class Candidate:
    """A retrieved chunk with its payload (kept in Redis for the request, not in the history)."""

    point_id: str
    doc_id: str
    version: str
    source: str
    title: str
    section_path: list[str]
    chunk_index: int
    text: str
    token_count: int
    embedding_version: str
    injection_flag: bool | None = None  # reads as instructions to the model (None: not checked at ingest)


@dataclass(kw_only=True)
class RetrieveInput:
    query: QueryInput


@dataclass(kw_only=True)
class RetrieveOutput:
    candidates_key: str
    ranking: str  # name of the ranking in the request's state ("retrieve")
    count: int
    top: list[Scored]  # the best few with their scores, for the history and the UI
    generation: int
    embedding_version: str
    ms: float = 0.0  # measured by the activity: workflow time does not move inside a task
    # A semantic-cache hit: the cached answer (a QueryOutput's fields) and the question it answered.
    cached_answer: dict[str, Any] | None = None
    cached_question: str = ""
    cache_ms: float = 0.0  # of `ms`, what the cache lookups took
    # The rankings came from the snippet cache (restored in the request's state); `reranked`:
    # re-scored when kept, so the workflow does not re-score again.
    snippet: bool = False
    reranked: bool = False


@dataclass(kw_only=True)
class RerankInput:
    question: str
    candidates_key: str
    ranking: str
    deadline_ms: float  # the re-scorer gives up past this, and the workflow keeps retrieval order


@dataclass(kw_only=True)
class RerankOutput:
    ranking: str  # "rerank"
    top: list[Scored]
    reranker: str
    ms: float = 0.0  # measured by the activity: workflow time does not move inside a task


@dataclass(kw_only=True)
class HopInput:
    query: QueryInput
    candidates_key: str
    ranking: str  # the ranking the hop starts from (re-scored, or retrieval's)
    generation: int
    deadline_ms: float  # the hop gives up past this, and the workflow keeps the first hop's ranking
    embedding_version: str = ""  # the index retrieval resolved: the hop searches the same one


@dataclass(kw_only=True)
class SecondHop:
    """What the second hop did, on the answer."""

    names: int  # candidate titles the top passages held
    linked: int  # passages of the documents they name that joined the ranking


@dataclass(kw_only=True)
class HopOutput:
    ranking: str  # "hop", or the input's when nothing was linked
    hop: SecondHop
    ms: float = 0.0


@dataclass(kw_only=True)
class ContextInput:
    tenant: str
    question: str
    candidates_key: str
    ranking: str
    token_budget: int
    request_id: str = ""
    stream: bool = False  # publish the sources event once the context is packed
    # The index retrieval read (its embedding version): neighbours come from the same one, even
    # when the tenant's active index flipped in between. "": the active one (older histories).
    embedding_version: str = ""
    sources_policy: str = "quote"  # what a passage that reads as instructions may be (guard_sources)
    schema_chars: int = 0  # the caller's JSON schema, which the prompt carries beside the question


@dataclass(kw_only=True)
class ContextPassage:
    """One numbered source in the prompt: a best hit, possibly joined with its neighbours."""

    ref: int  # [n] in the prompt and the answer
    doc_id: str
    version: str
    source: str
    title: str
    section_path: list[str]
    chunk_indexes: list[int]
    text: str
    score: float
    # A chunk of it reads as instructions to the model (None: some were not checked at ingest).
    flagged: bool | None = None


@dataclass(kw_only=True)
class ContextOutput:
    passages: list[ContextPassage]
    tokens: int
    dropped_duplicates: int
    dropped_over_budget: int
    confidence: float  # 0..1, from the best candidate's scores: what routing decides on
    ms: float = 0.0  # measured by the activity: workflow time does not move inside a task
    sources_flagged: int = 0  # passages that read as instructions (contained or left out by policy)


@dataclass(kw_only=True)
class GenerateInput:
    request_id: str
    tenant: str
    question: str
    passages: list[ContextPassage]
    confidence: float
    response_format: str = "text"
    json_schema: dict[str, Any] | None = None
    route: str | None = None
    stream: bool = False
    max_output_tokens: int | None = None
    deadline_ms: float = 0.0
    prompt_id: str = ""  # the prompt version the caller was assigned ("": the shipped default)
    quote_question: bool = True  # False: the question was flagged, and an answer never repeats it
    # The tenant's policy for a model's answer with claims no passage supports
    # (stores.guard_policy.GROUNDING_ACTIONS): flag it, retry once with a stricter prompt, or
    # answer extractively instead.
    grounding: str = "flag"
    # The tenant's actions on unsafe content in the answer: a streamed sentence is released only
    # once moderation and the output screen passed it (generation.release).
    moderation: str = "flag"
    severe: str = "refuse"
    # the index retrieve used (its tokenizer counts tokens); "": the tenant's active one
    embedding_version: str = ""


@dataclass(kw_only=True)
class ProviderAttempt:
    provider: str
    model: str
    outcome: str  # ok | error | timeout | breaker_open | skipped
    reason: str = ""
    ms: float = 0.0
    cold: bool = False  # the provider had not answered this process yet (a model loading, a cold cache)


@dataclass(kw_only=True)
class GenerateOutput:
    text: str
    route: str
    provider: str = ""  # empty when no provider ran (no sources, clarify, a failed step)
    model: str = ""
    prompt_id: str = ""
    prompt_hash: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    attempts: list[ProviderAttempt] = field(default_factory=list)
    clarifying: bool = False  # no answer was attempted: retrieval found too little
    ms: float = 0.0  # measured by the activity: workflow time does not move inside a task
    first_token_ms: float = 0.0  # from the step's start to the answer's first text (0: not measured)
    # What the grounding policy did to an ungrounded answer: "" nothing, "retried" (a stricter
    # prompt), "extractive" (the extractive answerer's answer instead)
    regrounded: str = ""


@dataclass(kw_only=True)
class ValidateInput:
    question: str
    text: str
    passages: list[ContextPassage]
    prompt_id: str
    response_format: str = "text"
    json_schema: dict[str, Any] | None = None
    clarifying: bool = False
    moderation: str = "flag"  # the tenant's actions on unsafe content in the answer
    severe: str = "refuse"
    tenant: str = ""  # whose encoder checks meaning (attribution); "": words alone
    provider: str = ""  # who wrote the text: the extractive answerer's sentences are the passages' own
    # the index retrieve used (its encoder checks meaning); "": the tenant's active one
    embedding_version: str = ""


@dataclass(kw_only=True)
class Citation:
    ref: int
    doc_id: str
    version: str
    source: str
    section_path: list[str]
    snippet: str


@dataclass(kw_only=True)
class ValidateOutput:
    text: str
    citations: list[Citation]
    supported_rate: float  # share of cited sentences supported by the passage they cite
    unsupported: list[str] = field(default_factory=list)
    invalid_refs: list[int] = field(default_factory=list)
    json_value: Any = None
    json_error: str | None = None
    repaired: bool = False
    ms: float = 0.0  # measured by the activity: workflow time does not move inside a task
    flags: list[str] = field(default_factory=list)  # output_blocked: withheld by the output screen
    citations_from: str = ""  # model | attributed | mixed | none (generation.grounding)


@dataclass(kw_only=True)
class FindInput:
    """Retrieve, rerank, second hop and context as one local activity (`query.find`): the query's
    candidates stay in the worker's memory between them. Each keeps its own budget."""

    query: QueryInput
    budgets_ms: dict[str, float]  # retrieve, rerank, hop, context (workflows.policies.QUERY_BUDGETS_MS)


@dataclass(kw_only=True)
class FindOutput:
    retrieved: RetrieveOutput
    ranking: str  # the ranking the context was packed from: retrieve, rerank or hop
    context: ContextOutput | None = None  # None: a cached answer, or retrieval only
    hop: SecondHop | None = None
    reranker: str = ""
    # per step, as the separate steps recorded them: what each took, and what each gave up
    timings_ms: dict[str, float] = field(default_factory=dict)
    degradations: list[str] = field(default_factory=list)
    ms: float = 0.0


@dataclass(kw_only=True)
class AnswerInput:
    """Generate, then validate, as one local activity (`query.answer`), each on its budget."""

    generate: GenerateInput
    validate_budget_ms: float


def validate_input(g: GenerateInput, generated: GenerateOutput) -> ValidateInput:
    """What validation checks: the generated text, against the passages it was generated from."""
    return ValidateInput(
        embedding_version=g.embedding_version,
        question=g.question,
        text=generated.text,
        passages=g.passages,
        prompt_id=generated.prompt_id,
        response_format=g.response_format,
        json_schema=g.json_schema,
        clarifying=generated.clarifying,
        moderation=g.moderation,
        severe=g.severe,
        tenant=g.tenant,
        provider=generated.provider,
    )


def best_passage(passages: list[ContextPassage]) -> GenerateOutput:
    """Generation failed outright: the best passage, cited, is still a grounded answer."""
    if not passages:
        return GenerateOutput(text="No answer could be generated.", route="fallback", clarifying=True)
    best = passages[0]
    return GenerateOutput(text=f"{best.text} [{best.ref}]", route="fallback", provider="passage")


def unverified(generated: GenerateOutput) -> ValidateOutput:
    """Validation failed or ran out of time: the answer goes out unchecked, and says so."""
    return ValidateOutput(text=generated.text, citations=[], supported_rate=0.0, flags=["unverified"])


@dataclass(kw_only=True)
class AnswerOutput:
    generated: GenerateOutput
    validated: ValidateOutput
    timings_ms: dict[str, float] = field(default_factory=dict)
    degradations: list[str] = field(default_factory=list)
    ms: float = 0.0


@dataclass(kw_only=True)
class QueryOutput:
    request_id: str
    answer: str
    citations: list[Citation]
    degradations: list[str]
    timings_ms: dict[str, float]
    route: str = ""
    provider: str = ""
    model: str = ""
    prompt_id: str = ""
    prompt_hash: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    embedding_version: str = ""
    supported_rate: float = 0.0
    json_value: Any = None
    json_error: str | None = None
    no_sources: bool = False
    clarifying: bool = False
    attempts: list[ProviderAttempt] = field(default_factory=list)
    ranking: str = ""  # the final ranking's name in the request's state (evaluation reads it)
    question_pii: dict[str, int] = field(default_factory=dict)  # redacted from the question, by type
    generation: int = 0  # the tenant's index generation the answer was read at (what a cache keys on)
    cache: str = "miss"  # exact | semantic | snippet | miss: where the answer came from
    cached_question: str = ""  # on a semantic hit, the question whose answer this is
    # Guardrail findings: question_injection, sources_injection, output_blocked, moderation:<category>
    flags: list[str] = field(default_factory=list)
    prompt_label: str = ""  # production | canary | default: how the prompt version was chosen
    # Where the citations came from: the model's own (model), added by validation because the
    # model's were missing or wrong (attributed), both (mixed), or none at all
    citations_from: str = ""
    first_token_ms: float = 0.0  # from the generate step's start to the answer's first text
    rewrite: QuestionRewrite | None = None  # a follow-up's standalone form
    second_hop: SecondHop | None = None  # None: no second hop ran


def query_output(fields: dict[str, Any]) -> QueryOutput:
    """A QueryOutput from its `asdict` form (a cached answer)."""
    return QueryOutput(
        **{
            **fields,
            "citations": [Citation(**c) for c in fields.get("citations", [])],
            "attempts": [ProviderAttempt(**a) for a in fields.get("attempts", [])],
            "rewrite": QuestionRewrite(**fields["rewrite"]) if fields.get("rewrite") else None,
            "second_hop": SecondHop(**fields["second_hop"]) if fields.get("second_hop") else None,
        }
    )
