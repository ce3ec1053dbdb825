"""Prompt templates are files under prompts/ with ids; every answer records the id and the hash.

A template's first lines are `# id: <id>` and comments; the rest is the text, with `{question}`,
`{context}` and (for JSON answers) `{schema}`. Changing a prompt means a new file with a new id,
so answers made with the old one can still be traced to exactly what the model was shown.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from contracts.query import ContextPassage

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"
TEXT_PROMPT = "answer.v1"
JSON_PROMPT = "answer-json.v1"
_SLOT = re.compile(r"\{(question|context|schema)\}")


@dataclass(frozen=True)
class Prompt:
    id: str
    template: str


@dataclass(frozen=True)
class Rendered:
    prompt_id: str
    text: str

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()[:16]


@lru_cache(maxsize=32)
def load(prompt_id: str, directory: Path = PROMPTS_DIR) -> Prompt:
    path = directory / f"{prompt_id}.txt"
    lines = path.read_text().splitlines()
    header = [ln for ln in lines if ln.startswith("#")]
    declared = next((ln.split(":", 1)[1].strip() for ln in header if ln.startswith("# id:")), None)
    if declared != prompt_id:
        raise ValueError(f"{path} declares id {declared!r}; the file name says {prompt_id!r}")
    body = "\n".join(ln for ln in lines if not ln.startswith("#")).strip() + "\n"
    return Prompt(prompt_id, body)


def format_context(passages: list[ContextPassage]) -> str:
    parts = []
    for p in passages:
        where = " > ".join(s for s in p.section_path if s) or p.title or p.source
        parts.append(f"[{p.ref}] ({where})\n{p.text}")
    return "\n\n".join(parts)


def render(question: str, passages: list[ContextPassage], json_schema: dict[str, Any] | None = None) -> Rendered:
    prompt = load(JSON_PROMPT if json_schema is not None else TEXT_PROMPT)
    values = {"question": question, "context": format_context(passages), "schema": json.dumps(json_schema or {})}
    # One pass, not str.format: sources and questions may hold braces or "{context}" themselves.
    text = _SLOT.sub(lambda m: values[m.group(1)], prompt.template)
    return Rendered(prompt.id, text)
