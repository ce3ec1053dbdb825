"""A model's second reading of each citation: does this passage say what this sentence says?

Word overlap, embedding similarity and the fact check (`generation.facts`) pass a sentence that
reuses a passage's words and names in another relation: "The medical school located in Allston
is Harvard Medical School" when the passage places Harvard Medical School in Longwood and only
the business school in Allston. Telling these apart is entailment, and no entailment model can be
had offline here; an instruct model can do it, even a small one, with a yes/no question.

So when a verifier is configured (`KEEL_VERIFIER`: a provider's name, e.g. `local` once `make
llm` wired a model in), each citation grounding would make is put to it before it is made: the passage, the
sentence, and "does the passage say this?". One token of answer at temperature 0. A "no" and the
sentence tries its next best passage, then is left unsupported (the answer is `ungrounded`). A
call that fails or finds the verifier's budget spent leaves the citation as the words chose it
and the answer `unverified`: never a silent pass.

Measured with Qwen2.5-Coder-0.5B verifying its own answers (SQuAD 2.0 dev, `make bench-grounding
--labels`): on the 54 labelled citations the question was chosen on, 0.90 of those it said "yes"
to were right, against 0.65 of all; on four fresh samples with it live, 0.824 (74 citations)
against 0.71 without it (24), while about twice as many answers were flagged `ungrounded`. So it is off unless
configured: a stronger model than the one answering is the verifier this is for. The passage
comes first in the question, so a server's prompt cache serves a second sentence on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from generation.providers import GenerationRequest, Provider, ProviderError

PROMPT_ID = "verify-support.v1"
SYSTEM = "You check whether a statement is supported by a passage. Answer only yes or no."
QUESTION = (
    "Passage: {passage}\n\nStatement: {sentence}\n\nIs every part of the statement supported by the passage? "
    "Answer yes or no."
)
CALL_TIMEOUT_S = 10.0  # one question, one token: a model slower than this is not answering

Check = Callable[[str, str], bool | None]  # (sentence, passage text) -> supported, or None: not checked


class Verifier:
    """Asks `provider`, within `budget_s` for one answer's citations (`session`)."""

    def __init__(self, provider: Provider, budget_s: float) -> None:
        self.provider = provider
        self.budget_s = budget_s

    def session(self) -> Check:
        """A check for one answer: every question it asks shares the answer's budget."""
        deadline = time.monotonic() + self.budget_s

        def check(sentence: str, passage: str) -> bool | None:
            left = deadline - time.monotonic()
            if left <= 0.05:
                return None
            return self.ask(sentence, passage, min(left, CALL_TIMEOUT_S))

        return check

    def ask(self, sentence: str, passage: str, timeout_s: float) -> bool | None:
        req = GenerationRequest(
            prompt=QUESTION.format(passage=passage, sentence=sentence),
            question=sentence,
            passages=[],
            max_output_tokens=1,
            timeout_s=timeout_s,
            system=SYSTEM,
            prompt_id=PROMPT_ID,
            strict=True,  # this question as it is, not the provider's answer prompt
        )
        try:
            said = self.provider.generate(req).text.strip().lower()
        except ProviderError:
            return None
        if said.startswith("yes"):
            return True
        if said.startswith("no"):
            return False
        return None
