"""Prompt templates are files under prompts/ with ids; every answer records the id and the hash.

A template's first lines are `# id: <id>` and comments; the rest is the text, with `{question}`,
`{context}` and (for JSON answers) `{schema}`. A line `===` parts the system message (the rules)
from the user's (sources and question); a template without one is all user message. From v2 on,
sources are `<source id=n>` blocks with their text escaped, so a document cannot close its block,
forge another, or pass as the rules; the numbered layouts (small models cite best from them)
quote every line of a source and defuse lines that mimic a source header or a label, so there
too a document cannot start a source or a question of its own (`fenced`). The layouts are the
renderer's: the hash recorded with every answer names exactly the text a model was sent.
Changing a prompt means a new file with a new id, so answers made with the old one can still be
traced to exactly what the model was shown.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from contracts.query import ContextPassage

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"
TEXT_PROMPT = "answer.v2"
JSON_PROMPT = "answer-json.v2"
STRICT_PROMPT = "answer-strict.v1"  # the retry of an answer with unsupported claims
SYSTEM_BREAK = "\n===\n"
_SLOT = re.compile(r"\{(question|context|schema)\}")
# A line's start that a numbered layout gives meaning to: a source number, or one of the labels
# prompts use. Anchored, bounded: linear on any line.
_FORGED = re.compile(
    r"^(\s{0,8})(?:\[(\d{1,4})\]|(question|sources?|answer|context|system|user|assistant|instructions?))"
    r"(?(2)|\s{0,8}:)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Prompt:
    id: str
    template: str
    sources: str = "blocks"  # how the passages are laid out: blocks (v2) or numbered (small models)


@dataclass(frozen=True)
class Rendered:
    prompt_id: str
    text: str  # the user message
    system: str = ""  # the system message ("": none)

    @property
    def hash(self) -> str:
        whole = f"{self.system}{SYSTEM_BREAK}{self.text}" if self.system else self.text
        return hashlib.sha256(whole.encode()).hexdigest()[:16]


@lru_cache(maxsize=32)
def load(prompt_id: str, directory: Path = PROMPTS_DIR) -> Prompt:
    path = directory / f"{prompt_id}.txt"
    lines = path.read_text().splitlines()
    header = [ln for ln in lines if ln.startswith("#")]
    declared = next((ln.split(":", 1)[1].strip() for ln in header if ln.startswith("# id:")), None)
    if declared != prompt_id:
        raise ValueError(f"{path} declares id {declared!r}; the file name says {prompt_id!r}")
    body = "\n".join(ln for ln in lines if not ln.startswith("#")).strip() + "\n"
    layout = next((ln.split(":", 1)[1].strip() for ln in header if ln.startswith("# sources:")), "blocks")
    if layout not in ("blocks", "numbered"):
        raise ValueError(f"{path}: sources layout {layout!r} is not blocks or numbered")
    return Prompt(prompt_id, body, layout)


def fenced(text: str) -> str:
    """A passage's text as the numbered layouts show it: every line quoted (`| `), so no line of a
    document starts where the prompt's own lines do, and a line that mimics a source header
    (`[7] HR Policy`) or one of the prompt's labels (`Question:`, `Sources:`) has its marker
    turned into plain text as well. Escaped like a block's text: no `<`, `>` or `&` of its own."""
    return "\n".join(f"| {line}" for line in defused(text).splitlines() or [""])


def defused(text: str) -> str:
    """The text escaped, with each line's source-header or label marker made plain text."""
    return "\n".join(_FORGED.sub(_defused, line) for line in html.escape(text, quote=False).split("\n"))


def _defused(m: re.Match[str]) -> str:
    return f"{m.group(1)}({m.group(2)})" if m.group(2) else f"{m.group(1)}{m.group(3)} -"


def format_context(passages: list[ContextPassage]) -> str:
    """v1: `[n] (where)` and the text, fenced."""
    parts = []
    for p in passages:
        where = " > ".join(s for s in p.section_path if s) or p.title or p.source
        parts.append(f"[{p.ref}] ({html.escape(where)})\n{fenced(p.text)}")
    return "\n\n".join(parts)


def source_blocks(passages: list[ContextPassage]) -> str:
    """v2: each passage a `<source id=n title="...">` block, its text and title escaped (no `<`,
    `>` or `&` of its own), so nothing in a document can end its block or open another."""
    return "\n".join(
        f'<source id="{p.ref}" title="{html.escape(" > ".join(s for s in p.section_path if s) or p.title or p.source)}">'
        f"\n{defused(p.text)}\n</source>"
        for p in passages
    )


def numbered_sources(passages: list[ContextPassage]) -> str:
    """`[n] title` and the text under it, fenced: the layout small models cite best (they copy
    the `[n]` they see), with nothing a document can forge."""
    return "\n\n".join(
        f"[{p.ref}] {html.escape(' > '.join(s for s in p.section_path if s) or p.title or p.source)}\n{fenced(p.text)}"
        for p in passages
    )


def render(
    question: str, passages: list[ContextPassage], json_schema: dict[str, Any] | None = None, prompt_id: str = ""
) -> Rendered:
    """The prompt `prompt_id` (a release's version; "" the shipped default for the answer's kind)."""
    prompt = load(prompt_id or (JSON_PROMPT if json_schema is not None else TEXT_PROMPT))
    system, _, user = prompt.template.rpartition(SYSTEM_BREAK)
    if prompt.sources == "numbered":
        context = numbered_sources(passages)
    else:
        context = source_blocks(passages) if system else format_context(passages)
    values = {"question": question, "context": context, "schema": json.dumps(json_schema or {})}
    # One pass, not str.format: sources and questions may hold braces or "{context}" themselves.
    fill = lambda text: _SLOT.sub(lambda m: values[m.group(1)], text)  # noqa: E731
    return Rendered(prompt.id, fill(user), fill(system).strip())
