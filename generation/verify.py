"""A model's second reading of each citation: does this sentence of the passage say what the answer says?

Word overlap, embedding similarity and the fact check (`generation.facts`) pass a sentence that
reuses a passage's words and names in another relation: "The medical school located in Allston
is Harvard Medical School" when the passage places Harvard Medical School in Longwood and only
the business school in Allston. Telling these apart is entailment, and no entailment model can be
had offline here; an instruct model can do it, even a small one, with a yes/no question.

So each citation grounding would make is put to the verifier before it is made: the passage's
one sentence that holds most of the claim's words (`generation.grounding.evidence`), the claim,
and "does the passage say this?". One token of answer at temperature 0. A "no" and the claim
tries its next best passage, then is left unsupported (the answer is `ungrounded`). A call that
fails or finds the verifier's budget spent leaves the citation as the words chose it and the
answer `unverified`: never a silent pass.

The verifier is `KEEL_VERIFIER` (a provider's name), else the model `make llm` wired in, reading
its own answers; `none` turns it off. The one evidence sentence, not the whole passage, is what
makes a small model useful here. Qwen2.5-Coder-0.5B judging the 128 model citations labelled
before the change (`make bench-grounding --labels ... --verifier URL`): a "yes" on the whole
passage was right for 0.885 of them (keeping 85 of the 96 right ones), on the evidence sentence for
0.960 (keeping 72). Live on 120 fresh questions: 0.920 (46 of 50 citations), against 0.824 (61
of 74) with whole passages before it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from generation.providers import GenerationRequest, Provider, ProviderError

PROMPT_ID = "verify-support.v2"  # v2: asked on the evidence sentence, not the whole passage
SYSTEM = "You check whether a statement is supported by a passage. Answer only yes or no."
QUESTION = (
    "Passage: {passage}\n\nStatement: {sentence}\n\nIs every part of the statement supported by the passage? "
    "Answer yes or no."
)
NO_VERIFIER = "none"  # KEEL_VERIFIER's word for: not even the local model's own reading
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
