"""A streamed answer leaves the worker a sentence at a time, each after the output guardrails passed it.

A provider streams tokens; the output screen (an answer that repeats a source's instructions or the
prompt's own text) and answer moderation used to run in the validate step, after every token had
been relayed, so an answer `/v1/query` withholds was delivered whole on `/v1/query/stream`. Here
the tokens are held until a sentence is complete; the answer so far (every complete sentence, so a
prompt-leak run that spans sentences is seen) is checked, and the new sentence is released only
if it passes. When one fails, nothing more is released and the client is told to drop what it
showed (`reset` with reason `withheld`); the final `done` event carries the withheld answer's
notice. The validate step still checks the whole answer, as before.

The cost is time to first token: a client sees the first sentence when it ends, not its first word.
"""

from __future__ import annotations

from collections.abc import Callable

from generation.grounding import SENTENCE

WITHHELD = "withheld"


class SentenceRelease:
    def __init__(self, emit: Callable[[str], None], check: Callable[[str], str | None]) -> None:
        self._emit = emit
        self._check = check  # why the answer so far must not be sent, or None
        self._text = ""
        self._released = 0  # characters of _text the client has
        self._scanned = 0  # where the next search for a sentence's end starts
        self.withheld: str | None = None  # why the rest was held back

    def feed(self, token: str) -> bool:
        """Take a token; release the sentences it completes. False once the answer is withheld."""
        if self.withheld is not None:
            return False
        self._scanned = max(self._released, len(self._text) - 1)  # a boundary may straddle two tokens
        self._text += token
        end = self._last_boundary()
        if end > self._released:
            self._release(end)
        return self.withheld is None

    def finish(self) -> None:
        """The provider is done: the last sentence needs no boundary after it."""
        if self.withheld is None and len(self._text) > self._released:
            self._release(len(self._text))

    def reset(self) -> None:
        """The provider's answer is void (a failover, a regrounded retry): start over."""
        self._text, self._released, self._scanned, self.withheld = "", 0, 0, None

    def _release(self, end: int) -> None:
        why = self._check(self._text[:end])
        if why is not None:
            self.withheld = why
            return
        self._emit(self._text[self._released : end])
        self._released = end

    def _last_boundary(self) -> int:
        end = self._released
        for m in SENTENCE.finditer(self._text, self._scanned):
            end = m.end()
        return end
