"""A conversation's step besides its turns' queries: the follow-up made standalone.

Deterministic first (`conversations.rewrite`), then by the tenant's model when one is wired
(`generation.followup`), within the step's deadline; the model's rewrite replaces the
deterministic one only when it came in time and reads as one question.
"""

from __future__ import annotations

import time

from contracts.conversation import RewriteInput, RewriteOutput
from conversations.history import exchanges
from conversations.rewrite import rewrite
from generation.followup import FollowupWriter


class FollowupSteps:
    def __init__(self, writer: FollowupWriter | None = None) -> None:
        self.writer = writer

    def rewrite(self, inp: RewriteInput) -> RewriteOutput:
        started = time.monotonic()
        history = exchanges(inp.turns)
        written = rewrite(inp.question, history, topic=inp.topic)
        failed = False
        if self.writer is not None and written.method != "none":
            deadline = started + inp.deadline_ms / 1000
            by_model = self.writer.write(inp.question, history, written, deadline, topic=inp.topic)
            failed = by_model is None
            written = by_model or written
        return RewriteOutput(
            question=written.question,
            search=written.search,
            method=written.method,
            model_failed=failed,
            ms=(time.monotonic() - started) * 1000,
        )
