"""The Markdown fast path gives exactly unstructured's elements, or steps aside."""

from __future__ import annotations

import pytest

from ingestion import parse
from ingestion.simple_md import partition_simple_md
from tests.conftest import SAMPLES

DOCS = [
    "# Retry policy\n\nFailed files are retried by running keel ingest again. Nothing is lost.\n",
    "# A\n\n## Second level heading ##\n\nShort one\n\nThe cache is keyed on the scope and the generation.\nIt has a TTL.\n",
    "Plain paragraph without a heading, which is a sentence that has a verb in it.\n\n### Deep\n\nTHE END\n",
    "# Numbers\n\n2024\n\nIn 2024 the index was rebuilt twice, and both rebuilds were fast.\n",
    "# Names\n\nAlice Bob Carol Dave Eve Frank Grace\n\nThe Quick Brown Fox Jumps Over The Lazy Dog Today\n",
    "# Results [2]\n\nThe effect was large (p<0.05, n > 30) and was seen in both arms [1], [3].\n",
]
NOT_SIMPLE = [
    "# List\n\n- one\n- two\n",
    "# Code\n\n    indented code\n",
    "# Emphasis\n\nThis is *important* text that has a verb.\n",
    "# Link\n\nSee [the docs](http://example.com) which are long.\n",
    "# Reference\n\nSee [the docs][ref] which are long.\n\n[ref]: http://example.com\n",
    "# Tag\n\nThe <b>bold</b> claim was made in 2020 and it is here.\n",
    "# Autolink\n\nThe site <http://example.com> is where it was found.\n",
    "# Quote\n\n> quoted text is here\n",
    "# Table\n\n| a | b |\n|---|---|\n| 1 | 2 |\n",
    "# Break\n\nA line with a hard break  \nand another one that is here.\n",
    "Setext heading\n==============\n\nBody text that is plain.\n",
]


def _unstructured(text: str) -> list[tuple[str, str, int | None, int | None]]:
    parse._ensure_offline()
    elements = [parse._to_element(e) for e in parse._partition_text_kind("md", text)]
    return [(e.kind, e.text, e.depth, e.page) for e in elements if e.text.strip()]


def _fast(text: str) -> list[tuple[str, str, int | None, int | None]] | None:
    elements = partition_simple_md(text)
    return None if elements is None else [(e.kind, e.text, e.depth, e.page) for e in elements]


@pytest.mark.parametrize("text", DOCS)
def test_simple_markdown_gives_unstructureds_elements(text: str) -> None:
    fast = _fast(text)
    assert fast is not None and fast == _unstructured(text)


def test_the_sample_corpus_markdown_is_parsed_the_same() -> None:
    for path in SAMPLES.glob("*.md"):
        text = path.read_text()
        fast = _fast(text)
        assert fast is None or fast == _unstructured(text), path.name


@pytest.mark.parametrize("text", NOT_SIMPLE)
def test_anything_else_is_left_to_unstructured(text: str) -> None:
    assert partition_simple_md(text) is None
    assert parse.parse_document(text.encode(), "doc.md", 10**6).elements  # and still parses
