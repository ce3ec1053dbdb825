"""A conversation keeps the newest turns that fit its token budget."""

from __future__ import annotations

from contracts.conversation import TurnRecord
from conversations.history import exchanges, kept_within, tokens


def _turn(i: int, answer_chars: int = 400, answered: bool = True) -> TurnRecord:
    return TurnRecord(
        request_id=f"r{i}", asked=f"q{i}", question=f"q{i} (about X)", method="context",
        answer="a" * answer_chars, answered=answered,
    )  # fmt: skip


def test_the_newest_turns_that_fit_are_kept_in_order() -> None:
    turns = [_turn(i) for i in range(10)]
    each = tokens(turns[0])
    kept = kept_within(turns, budget_tokens=3 * each)
    assert [t.request_id for t in kept] == ["r7", "r8", "r9"]


def test_the_last_turn_stays_even_when_it_alone_is_over_budget() -> None:
    kept = kept_within([_turn(0), _turn(1, answer_chars=100_000)], budget_tokens=100)
    assert [t.request_id for t in kept] == ["r1"]


def test_exchanges_are_what_was_asked_and_said() -> None:
    (first,) = exchanges([_turn(3, answered=False)])
    assert (first.question, first.answered) == ("q3", False)
