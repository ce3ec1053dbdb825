"""Output validation: grounded citations, and JSON that matches the caller's schema.

Citations: every `[n]` must name a passage that was in the context; unknown ones are removed and
recorded. Every claim of the answer is checked against the passages, cited or not: a model's
citation stays where its passage supports the sentence, a missing or wrong one is replaced by the
passage that does, and a claim no passage supports is listed (`generation.grounding`). The share
of supported claims is recorded on the answer.

JSON: the text is parsed and validated against the schema; if that fails it is repaired once
(code fences and prose around the value stripped, trailing commas removed) and validated again;
a second failure is a `json_invalid` result the caller gets as a clear error.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from contracts.query import Citation, ContextPassage
from generation import schema as json_schema
from generation.grounding import REF, SENTENCE, Grounder
from generation.instructions import addressed_to_assistant
from guardrails import moderation
from keel.words import WORD

SNIPPET_CHARS = 240


@dataclass
class CitationCheck:
    text: str  # the answer with the citations kept and added
    citations: list[Citation]
    supported_rate: float  # share of its claims a passage supports
    unsupported: list[str] = field(default_factory=list)  # claims no passage supports
    invalid_refs: list[int] = field(default_factory=list)  # citations of passages not in the context
    source: str = "none"  # model | attributed | mixed | none: where the kept citations came from
    unverified: bool = False  # a citation the verifier could not be asked about (generation.verify)

    @property
    def ungrounded(self) -> bool:
        return bool(self.unsupported)


def check_citations(
    text: str, passages: list[ContextPassage], grounder: Grounder | None = None, question: str = ""
) -> CitationCheck:
    """Every claim of the answer checked against the passages, the model's citations kept where
    they hold and added where they are missing or wrong (`generation.grounding`)."""
    grounded = (grounder or Grounder(None)).ground(text, passages, question)
    by_ref = {p.ref: p for p in passages}
    return CitationCheck(
        text=grounded.text,
        citations=[_citation(by_ref[r]) for r in grounded.refs],
        supported_rate=grounded.supported_rate,
        unsupported=[u[:300] for u in grounded.unsupported],
        invalid_refs=grounded.invalid_refs,
        source=grounded.source,
        unverified=grounded.unverified,
    )


def _citation(p: ContextPassage) -> Citation:
    snippet = p.text if len(p.text) <= SNIPPET_CHARS else p.text[:SNIPPET_CHARS].rsplit(" ", 1)[0] + " …"
    return Citation(
        ref=p.ref, doc_id=p.doc_id, version=p.version, source=p.source, section_path=p.section_path, snippet=snippet
    )


@dataclass
class JsonCheck:
    value: Any = None
    error: str | None = None
    repaired: bool = False


def check_json(text: str, schema: dict[str, Any]) -> JsonCheck:
    first = _parse_and_validate(text, schema)
    if first.error is None:
        return first
    repaired = _repair(text)
    if repaired == text:
        return first
    second = _parse_and_validate(repaired, schema)
    second.repaired = second.error is None
    if second.error is not None:
        second.error = f"{first.error} (and after one repair: {second.error})"
    return second


def _parse_and_validate(text: str, schema: dict[str, Any]) -> JsonCheck:
    try:
        value = json.loads(text)
    except ValueError as exc:
        return JsonCheck(error=f"not JSON: {exc}")
    error = json_schema.validate(value, schema)
    if error is not None:
        return JsonCheck(value=value, error=f"does not match the schema: {error}")
    return JsonCheck(value=value)


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")


def _repair(text: str) -> str:
    s = text.strip()
    fence = _FENCE.search(s)
    if fence:
        s = fence.group(1).strip()
    starts = [i for i in (s.find("{"), s.find("[")) if i >= 0]
    if starts:
        start = min(starts)
        end = max(s.rfind("}"), s.rfind("]"))
        if end > start:
            s = s[start : end + 1]
    return _TRAILING_COMMA.sub(r"\1", s)


WITHHELD = "The answer was withheld: it repeated instructions found in the sources, not facts from them."
_WORDS = WORD  # keel.words
LEAK_RUN = 8  # words in a row from the prompt's own text: the answer is quoting the prompt


def screen_output(text: str, prompt_template: str) -> str | None:
    """Why the answer must not be sent, or None: a sentence of it speaks to the assistant (a
    source's injection repeated; a procedure the sources give the reader is not one), or it
    repeats a run of the prompt's own instructions."""
    for sentence in SENTENCE.split(text):
        if sentence.strip() and addressed_to_assistant(REF.sub("", sentence)):
            return "instruction"
    runs = _runs(prompt_template)
    words = [w.lower() for w in _WORDS.findall(text)]
    if any(tuple(words[i : i + LEAK_RUN]) in runs for i in range(len(words) - LEAK_RUN + 1)):
        return "prompt_leak"
    return None


@lru_cache(maxsize=16)
def _runs(prompt_template: str) -> frozenset[tuple[str, ...]]:
    """Every LEAK_RUN words in a row of a prompt's own text (once per template, not per answer)."""
    words = [w.lower() for w in _WORDS.findall(prompt_template) if w not in ("question", "context", "schema")]
    return frozenset(tuple(words[i : i + LEAK_RUN]) for i in range(len(words) - LEAK_RUN + 1))


def refusal(text: str, prompt_template: str, action: str, severe_action: str) -> str | None:
    """Why the answer must be withheld, or None: the output screen, then moderation's refusals."""
    blocked = screen_output(text, prompt_template)
    if blocked is not None:
        return blocked
    _, refused = moderate_answer(text, action, severe_action)
    return f"moderation:{','.join(refused)}" if refused else None


def moderate_answer(text: str, action: str, severe_action: str) -> tuple[list[str], list[str]]:
    """The answer's `moderation:<category>` flags, and the categories the policy refuses (the
    answer is then withheld)."""
    acted = moderation.actions(moderation.shipped().check(text).flagged, action, severe_action)
    flags = [f"moderation:{c}" for c, a in acted.items() if a != "allow"]
    return flags, sorted(c for c, a in acted.items() if a == "refuse")
