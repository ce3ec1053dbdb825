"""A conversation's kept turns: what the next rewrite reads, cut to a token budget.

Tokens are estimated from characters (four to a token, as English text averages under the
encoders Keel ships), so the workflow can trim without loading a tokenizer; the budget bounds
what the conversation holds, not a model's window.
"""

from __future__ import annotations

from collections.abc import Sequence

from contracts.conversation import TurnRecord
from contracts.query import QueryOutput
from conversations.rewrite import Exchange

CHARS_PER_TOKEN = 4


def tokens(turn: TurnRecord) -> int:
    return (len(turn.asked) + len(turn.question) + len(turn.answer)) // CHARS_PER_TOKEN + 1


def kept_within(turns: Sequence[TurnRecord], budget_tokens: int) -> list[TurnRecord]:
    """The newest turns whose estimated tokens fit the budget (the last turn always stays)."""
    kept: list[TurnRecord] = []
    spent = 0
    for turn in reversed(turns):
        spent += tokens(turn)
        if kept and spent > budget_tokens:
            break
        kept.append(turn)
    return kept[::-1]


def exchanges(turns: Sequence[TurnRecord]) -> list[Exchange]:
    """The kept turns as the rewrite reads them: the question as asked, the answer as given."""
    return [Exchange(question=t.asked, answer=t.answer, answered=t.answered) for t in turns]


def said_something(out: QueryOutput) -> bool:
    """Did the answer say something from the documents? A decline, a clarifying reply or an
    answer with no citation carries nothing the next follow-up could lean on."""
    return bool(out.citations) and not (out.clarifying or out.no_sources)
