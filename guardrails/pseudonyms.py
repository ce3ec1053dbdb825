"""Keyed pseudonyms: a detected name becomes the same token wherever the tenant writes it.

Redaction to a blank placeholder (`<PERSON>`) protects a name and erases what retrieval needs: the
question "Were Scott Derrickson and Ed Wood of the same nationality?" and the paragraph about
Scott Derrickson no longer share the words that matter. A keyed pseudonym keeps that link
without the name: `PERSON_q7tm2kxa` is derived from the value with the tenant's secret (HMAC),
so the same person is the same token in every document and question of that tenant, BM25 and
filters match it, and the token means nothing across tenants or without the key. The original
goes to the tenant's vault, sealed (`stores.pii_vault`); the edge turns tokens back into names
for a reader of the passages they came from.

A tenant chooses per entity type: `pseudonymise` (the default), `redact` (the blank placeholder,
nothing kept), or `keep` (left as written).

Values are compared folded (case, spacing, the possessive `'s`), so "Scott Derrickson" and "SCOTT
DERRICKSON'S" are one token; "Derrickson" alone is another.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

ACTIONS = ("pseudonymise", "redact", "keep")
CODE_CHARS = 8  # base32 characters of the HMAC: 40 bits, no collision in any one tenant's names
# A token as it stands in text: the entity type, an underscore, the code (lower-case base32).
TOKEN = re.compile(r"\b([A-Z][A-Z_]{1,30})_([a-z2-7]{8})\b")
_SPACES = re.compile(r"\s+")
_WORD = re.compile(r"\S+")
# A run of up to four capitalised words: where a name the detector missed may stand ("Ed Wood").
_CAPITALISED_RUN = re.compile(r"\b[A-Z][a-z][\w'’\-]*(?: [A-Z][a-z][\w'’\-]*){0,3}\b")


class Located(Protocol):
    """A detected value: what it is and where (`guardrails.pii.Span` is one)."""

    @property
    def entity(self) -> str: ...
    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...


@dataclass(frozen=True, kw_only=True)
class Found:
    entity: str
    start: int
    end: int


@dataclass
class Replaced:
    text: str
    counts: dict[str, int]  # by entity type, what was replaced (pseudonymised or redacted)
    tokens: dict[str, str] = field(default_factory=dict)  # token -> the original value it stands for


def fold(value: str) -> str:
    """A value as its token is derived from it: case, spacing and a trailing possessive dropped."""
    folded = _SPACES.sub(" ", value.strip()).casefold()
    return folded.removesuffix("'s").removesuffix("’s").strip()


class Pseudonyms:
    """A tenant's pseudonymiser: its secret and its action per entity type."""

    def __init__(self, secret: bytes, actions: Mapping[str, str] | None = None) -> None:
        if len(secret) < 16:
            raise ValueError("a pseudonym secret is at least 16 bytes")
        self._secret = secret
        self.actions = dict(actions or {})

    def action(self, entity: str) -> str:
        return self.actions.get(entity, "pseudonymise")

    def token(self, entity: str, value: str) -> str:
        digest = hmac.new(self._secret, f"{entity}\x00{fold(value)}".encode(), hashlib.sha256).digest()
        code = base64.b32encode(digest).decode().lower()[:CODE_CHARS]
        return f"{entity}_{code}"

    def replace(self, text: str, spans: Sequence[Located]) -> Replaced:
        """`text` with each span (non-overlapping, in order) pseudonymised, redacted or kept."""
        out: list[str] = []
        counts: Counter[str] = Counter()
        tokens: dict[str, str] = {}
        at = 0
        for s in spans:
            action = self.action(s.entity)
            if action == "keep":
                continue
            end = s.end - 2 if text[s.start : s.end].lower().endswith(("'s", "’s")) else s.end
            value = text[s.start : end]  # a possessive stays outside the token: "<token>'s film"
            if action == "redact":
                replacement = f"<{s.entity}>"
            else:
                replacement = self.token(s.entity, value)
                tokens.setdefault(replacement, value)
            out += [text[at : s.start], replacement]
            at = end
            counts[s.entity] += 1
        out.append(text[at:])
        return Replaced("".join(out), dict(counts), tokens)


def tokens_in(text: str) -> list[str]:
    """The pseudonym tokens a text holds, in order of first appearance."""
    return list(dict.fromkeys(m.group(0) for m in TOKEN.finditer(text)))


def reveal(text: str, originals: Mapping[str, str], unknown: str = "[{kind}]") -> str:
    """Tokens turned back into the values they stand for; a token with no known original (its
    document deleted, or not the reader's to see) becomes a plain label, never a raw token."""

    def back(m: re.Match[str]) -> str:
        found = originals.get(m.group(0))
        return found if found is not None else unknown.format(kind=m.group(1).lower().replace("_", " "))

    return TOKEN.sub(back, text)


def name_candidates(text: str) -> list[tuple[int, int]]:
    """Every run of one to four capitalised words, and each of its contiguous parts, longest
    first: the spans to look up among the tenant's known names by their tokens."""
    spans: list[tuple[int, int]] = []
    for run in _CAPITALISED_RUN.finditer(text):
        words = [(m.start() + run.start(), m.end() + run.start()) for m in _WORD.finditer(run.group(0))]
        for size in range(len(words), 0, -1):
            spans += [(words[i][0], words[i + size - 1][1]) for i in range(len(words) - size + 1)]
    return sorted(spans, key=lambda s: (s[0] - s[1], s[0]))
