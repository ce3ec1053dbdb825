"""A document's chunks redacted: text, section titles and title, in one batch (`guardrails.pii`)."""

from __future__ import annotations

from dataclasses import dataclass

from guardrails.pii import Redactor, merge_counts
from guardrails.pseudonyms import Pseudonyms
from ingestion.chunk import Chunk


@dataclass
class Redacted:
    title: str
    chunks: list[Chunk]
    counts: dict[str, int]  # by entity type
    tokens: dict[str, str]  # pseudonym token -> original (empty without pseudonyms)


def redact_chunks(
    redactor: Redactor, title: str, chunks: list[Chunk], pseudonyms: Pseudonyms | None = None
) -> Redacted:
    """Chunk text, section titles and the document title: names hide in headings too. All of a
    document's texts go through the redactor in one batch; each heading once, however many
    chunks it heads (and is counted once). With the tenant's `pseudonyms`, values become its
    keyed tokens and their originals come back in `tokens`, for the vault."""
    headings = list(dict.fromkeys(h for c in chunks for h in c.section_path))
    done = redactor.redact_many([title, *headings, *(c.text for c in chunks)], pseudonyms)
    red_title, red_headings, bodies = done[0], done[1 : 1 + len(headings)], done[1 + len(headings) :]
    by_heading = {h: r.text for h, r in zip(headings, red_headings, strict=True)}
    for c, body in zip(chunks, bodies, strict=True):
        c.text, c.section_path = body.text, [by_heading[h] for h in c.section_path]
    tokens = {t: v for r in done for t, v in r.tokens.items()}
    return Redacted(red_title.text, chunks, merge_counts([r.counts for r in done]), tokens)
