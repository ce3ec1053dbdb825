"""Simple Markdown without a full partition: the elements unstructured gives, at a fraction of the cost.

unstructured turns Markdown into HTML and classifies every paragraph with spaCy (its sentence
count and part-of-speech tags decide narrative text from titles): about 20 ms of a 21 ms parse of
an abstract. Most Markdown that gets ingested is headings and paragraphs of prose. For that,
this module gives the same elements directly: an ATX heading is a Title of its level, a
paragraph is classified by unstructured's own rules, with spaCy consulted only where cheap checks
cannot already tell (a paragraph with a clear verb and few capitals is narrative text whatever the
tagger says). Anything else (lists, quotes, code, tables, emphasis, links, HTML, entities, hard
breaks) returns None, and unstructured partitions the file as before. Equality with unstructured
is tested on the sample corpus and checked on a whole corpus by `make bench-ingest`.
"""

from __future__ import annotations

import re

from ingestion.parse import Element

_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
# No Markdown or HTML syntax on the line: "[1]" and "p < 0.05" are text, but a link ("](", "]["),
# a reference definition, a tag or an autolink ("<" before a letter, "/", "!" or "?") is not.
_SYNTAX = re.compile(r"[*_`|\\&!~#{}]|\]\(|\]\[|^\s*\[[^\]]*\]:|<[A-Za-z/!?]")
_BLOCK = re.compile(r"^(?: {4}|\t| {0,3}(?:[-+*>=]|\d+[.)](?:\s|$)))")  # code, list, quote, setext
_BREAK = re.compile(r"\n[ \t]*\n")
# Auxiliaries a tagger reads as verbs in any sentence (VBZ, VBP, VBD, VBN, VBG).
_VERB = re.compile(r"\b(?:is|are|was|were|has|have|had|been|being)\b")
_ALPHA = re.compile(r"[^\W\d_]+")


def partition_simple_md(text: str) -> list[Element] | None:
    """The elements of Markdown made only of ATX headings and plain paragraphs; None otherwise."""
    from unstructured.partition.text_type import (
        is_bulleted_text,
        is_email_address,
        is_possible_narrative_text,
        is_us_city_state_zip,
    )

    out: list[Element] = []
    for block in _BREAK.split(text.strip("\n")):
        lines = block.split("\n")
        if not block.strip():
            continue
        heading = _HEADING.match(lines[0]) if len(lines) == 1 else None
        if heading is not None:
            title = " ".join(heading.group(2).split())
            if not title or _SYNTAX.search(title):
                return None
            out.append(Element(kind="Title", text=title, depth=len(heading.group(1)) - 1))
            continue
        if any(_SYNTAX.search(line) or _BLOCK.match(line) or line.endswith("  ") for line in lines):
            return None
        para = " ".join(block.split())
        if is_bulleted_text(para) or is_us_city_state_zip(para) or is_email_address(para) or len(para) < 2:
            return None  # rare kinds: unstructured decides them
        narrative = _surely_narrative(para) or is_possible_narrative_text(para)
        out.append(Element(kind="NarrativeText" if narrative else "UncategorizedText", text=para))
    return out


def _surely_narrative(text: str) -> bool:
    """True only where unstructured's narrative test must say so too: not numeric, mostly
    letters, few capitalised words (so not a title by its capital ratio), and a verb no tagger
    misses."""
    from unstructured.partition.text_type import under_non_alpha_ratio

    words = _ALPHA.findall(text)
    if len(words) < 5 or text.isnumeric() or text.isupper() or under_non_alpha_ratio(text, 0.5):
        return False
    capitals = sum(w[0].isupper() for w in words) / len(words)
    return capitals < 0.3 and _VERB.search(text) is not None
