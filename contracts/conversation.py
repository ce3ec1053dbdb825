"""ConversationWorkflow's contracts: how it starts, what a turn sends and what it keeps.

New fields get defaults so running conversations keep decoding what older code wrote (a
conversation lives for weeks; its state crosses deploys through continue-as-new).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from contracts.query import QueryInput


@dataclass(kw_only=True)
class TurnRecord:
    """One answered turn, as the conversation keeps it (sealed in its history by the codec)."""

    request_id: str
    asked: str  # the follow-up as asked (redacted)
    question: str  # the standalone question it was answered as
    method: str  # how it was made standalone: none | context | llm
    answer: str
    answered: bool  # False: no sources, or a clarifying reply (it carries no context forward)
    doc_ids: list[str] = field(default_factory=list)  # the documents its answer cited
    at: float = 0.0  # unix seconds


@dataclass(kw_only=True)
class ConversationStart:
    tenant: str
    conversation_id: str
    owner: str  # the key id of the principal that created it: only it may read or continue it
    created_at: float
    retention_s: float  # idle this long, the conversation ends (its record goes with it)
    history_tokens: int  # the turns kept for the next rewrite fit in this many tokens
    title: str = ""
    turns: list[TurnRecord] = field(default_factory=list)  # carried over by continue-as-new
    runs: int = 1  # this run's number: each continue-as-new adds one
    query_task_queue: str = "keel-query"  # where its turns' queries run
    turns_per_run: int = 50  # then it continues as new: its history holds a few events per turn


@dataclass(kw_only=True)
class TurnInput:
    """A turn: the checked and redacted question with the caller's options, and who asks it."""

    query: QueryInput
    owner: str


@dataclass(kw_only=True)
class ConversationView:
    conversation_id: str
    owner: str
    title: str
    created_at: float
    updated_at: float
    turns: list[TurnRecord]
    ended: bool = False


@dataclass(kw_only=True)
class RewriteInput:
    """A follow-up to make standalone, with the turns it may lean on and the conversation's title."""

    question: str
    turns: list[TurnRecord]
    topic: str = ""
    deadline_ms: float = 0.0  # a model's rewrite is given up past this


@dataclass(kw_only=True)
class RewriteOutput:
    question: str  # standalone
    search: str  # what retrieval looks for
    method: str  # none | context | llm
    model_failed: bool = False  # a model was asked, and its rewrite was not used (late, failed, implausible)
    ms: float = 0.0
