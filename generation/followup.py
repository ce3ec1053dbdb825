"""A follow-up made standalone by a model, when the tenant has one wired: "And who approved it?"
becomes "Who approved the Q3 budget?".

The deterministic rewrite (`conversations.rewrite`) names what a follow-up leans on and carries
the conversation's words to retrieval; a model can also resolve what a pronoun points at and
phrase the question as a person would. The model writes only the standalone question: what
retrieval searches for is still that question with the conversation's context carried after it
(`conversations.rewrite.search_text`), so a model's rewrite can add to retrieval but never take
the earlier turns' words away. A reply that is not one plausible question (empty, several lines,
far longer than the follow-up, a refusal) is not used, and neither is one that comes too late:
the deterministic rewrite stands, and the turn says the model's was not used.

The rewriter is `KEEL_REWRITER` (a provider's name), else the model `make llm` wired in; `none`
turns it off.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from conversations.rewrite import Exchange, Rewrite, search_text
from generation.providers import GenerationRequest, Provider, ProviderError

PROMPT_ID = "followup-rewrite.v1"
SYSTEM = (
    "You rewrite the last question of a conversation so that it can be understood on its own. Keep its meaning; "
    "replace pronouns and vague references with what they refer to. Reply with the rewritten question only."
)
TURNS_SHOWN = 3  # the latest turns the model reads: a follow-up leans on what was just said
ANSWER_CHARS = 400  # of each answer shown
MAX_OUTPUT_TOKENS = 64
_REFUSALS = ("i can't", "i cannot", "sorry", "as an ai")


def prompt(question: str, history: Sequence[Exchange], topic: str = "") -> str:
    lines = [f"Conversation topic: {topic}"] if topic else []
    for turn in history[-TURNS_SHOWN:]:
        lines.append(f"Q: {turn.question}")
        lines.append(f"A: {turn.answer[:ANSWER_CHARS] if turn.answered else '(no answer)'}")
    lines += [f"Last question: {question}", "Rewritten question:"]
    return "\n".join(lines)


def plausible(text: str, question: str) -> str | None:
    """The model's reply as one standalone question, or None when it is not one."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if len(lines) != 1:
        return None
    written = lines[0].removeprefix("Rewritten question:").strip().strip('"').strip()
    if not written or len(written) > 4 * len(question) + 200 or written.lower().startswith(_REFUSALS):
        return None
    return written


class FollowupWriter:
    def __init__(self, provider: Provider) -> None:
        self.provider = provider

    def write(
        self, question: str, history: Sequence[Exchange], written: Rewrite, deadline_s: float, topic: str = ""
    ) -> Rewrite | None:
        """The model's rewrite of `question`, or None (failed, late or implausible): `written`,
        the deterministic rewrite, then stands."""
        left = deadline_s - time.monotonic()
        if left <= 0.05:
            return None
        req = GenerationRequest(
            prompt=prompt(question, history, topic),
            question=question,
            passages=[],
            max_output_tokens=MAX_OUTPUT_TOKENS,
            timeout_s=left,
            system=SYSTEM,
            prompt_id=PROMPT_ID,
            strict=True,  # this prompt as it is, not the provider's answer prompt
        )
        try:
            said = self.provider.generate(req).text
        except ProviderError:
            return None
        standalone = plausible(said, question)
        if standalone is None:
            return None
        return Rewrite(question=standalone, search=search_text(standalone, history, topic=topic), method="llm")
