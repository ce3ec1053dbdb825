"""A document's chunks redacted: text, section titles and title, in one batch (`guardrails.pii`)."""

from __future__ import annotations

from guardrails.pii import Redactor, merge_counts
from ingestion.chunk import Chunk


def redact_chunks(redactor: Redactor, title: str, chunks: list[Chunk]) -> tuple[str, list[Chunk], dict[str, int]]:
    """Chunk text, section titles and the document title: names hide in headings too. All of a
    document's texts go through the redactor in one batch; each heading once, however many
    chunks it heads (and is counted once)."""
    headings = list(dict.fromkeys(h for c in chunks for h in c.section_path))
    done = redactor.redact_many([title, *headings, *(c.text for c in chunks)])
    red_title, red_headings, bodies = done[0], done[1 : 1 + len(headings)], done[1 + len(headings) :]
    by_heading = {h: r.text for h, r in zip(headings, red_headings, strict=True)}
    for c, body in zip(chunks, bodies, strict=True):
        c.text, c.section_path = body.text, [by_heading[h] for h in c.section_path]
    return red_title.text, chunks, merge_counts([r.counts for r in done])
