"""A follow-up made standalone by a model, against the scripted OpenAI-compatible server; the
deterministic rewrite stands whenever the model's is not one plausible question in time."""

from __future__ import annotations

import time

import pytest

from contracts.conversation import RewriteInput, TurnRecord
from conversations.rewrite import Exchange, rewrite
from generation.followup import FollowupWriter, plausible, prompt
from generation.openai_compat import OpenAICompatProvider, ProviderConfig
from pipelines.conversation import FollowupSteps
from tests.scripted_llm import scripted_llm

HISTORY = [Exchange(question="Who approved the Q3 budget?", answer="Dana Reyes approved it on 3 July [1].")]
FOLLOW_UP = "And when did she sign it?"
STANDALONE = "When did Dana Reyes sign the Q3 budget?"


def _writer(base_url: str) -> FollowupWriter:
    return FollowupWriter(OpenAICompatProvider(ProviderConfig("local", base_url, "scripted")))


def test_the_models_question_is_used_and_searched_with_the_conversations_context() -> None:
    with scripted_llm(["ok"], answer=STANDALONE) as llm:
        fallback = rewrite(FOLLOW_UP, HISTORY)
        written = _writer(llm.base_url).write(FOLLOW_UP, HISTORY, fallback, time.monotonic() + 5)
    assert written is not None and written.method == "llm" and written.question == STANDALONE
    assert written.search.startswith(STANDALONE) and "Dana Reyes approved it on 3 July" in written.search
    sent = llm.requests[-1]["messages"]
    assert sent[0]["role"] == "system" and "Last question: And when did she sign it?" in sent[-1]["content"]


@pytest.mark.parametrize("script", [["500"], ["malformed"], ["timeout"]])
def test_a_failed_or_late_model_leaves_the_deterministic_rewrite(script: list[str]) -> None:
    with scripted_llm(script, answer=STANDALONE, sleep_s=2.0) as llm:
        steps = FollowupSteps(_writer(llm.base_url))
        turns = [
            TurnRecord(request_id="r1", asked=HISTORY[0].question, question=HISTORY[0].question, method="none",
                       answer=HISTORY[0].answer, answered=True),
        ]  # fmt: skip
        out = steps.rewrite(RewriteInput(question=FOLLOW_UP, turns=turns, deadline_ms=1000))
    assert out.method == "context" and out.model_failed
    assert out.question == rewrite(FOLLOW_UP, HISTORY).question
    assert out.ms < 1900  # the deadline held: the model's timeout is the step's remaining time


def test_without_a_model_the_step_is_the_deterministic_rewrite() -> None:
    turns = [TurnRecord(request_id="r1", asked="Who approved the Q3 budget?", question="", method="none",
                        answer="Dana Reyes approved it [1].", answered=True)]  # fmt: skip
    out = FollowupSteps(None).rewrite(RewriteInput(question=FOLLOW_UP, turns=turns, deadline_ms=1000))
    assert (out.method, out.model_failed) == ("context", False) and "Dana Reyes" in out.question


@pytest.mark.parametrize(
    ("reply", "used"),
    [
        (STANDALONE, STANDALONE),
        (f'Rewritten question: "{STANDALONE}"', STANDALONE),
        ("", None),
        (f"{STANDALONE}\nI hope this helps!", None),  # more than the question
        ("I can't help with that.", None),
        ("x" * 500, None),  # far longer than any rewrite of the follow-up
    ],
)
def test_only_one_plausible_question_is_taken(reply: str, used: str | None) -> None:
    assert plausible(reply, FOLLOW_UP) == used


def test_the_prompt_shows_the_latest_turns_and_says_when_one_was_not_answered() -> None:
    turns = [Exchange(question=f"q{i}", answer=f"a{i}") for i in range(5)]
    turns.append(Exchange(question="q5", answer="", answered=False))
    shown = prompt("and then?", turns, topic="Budgets")
    assert shown.startswith("Conversation topic: Budgets") and "q1" not in shown and "q3" in shown
    assert "A: (no answer)" in shown and shown.endswith("Last question: and then?\nRewritten question:")
