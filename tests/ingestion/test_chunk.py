from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import pytest

from encoders.dense import Embedder
from ingestion.chunk import ChunkConfig, build_blocks, chunk_elements, split_sentences
from ingestion.parse import Element
from keel.config import Settings

CONFIG = ChunkConfig(min_tokens=400, max_tokens=800, overlap_tokens=80)


@pytest.fixture(scope="module")
def count() -> Iterator[object]:
    s = Settings()
    embedder = Embedder(s.embedding_model_path, s.embedding_model_id, threads=1)
    yield embedder.count_tokens


def _sentences(topic: str, n: int) -> str:
    return " ".join(
        f"Finding {i} about {topic} was replicated in cohort {i} with consistent effect sizes." for i in range(n)
    )


def test_sections_give_each_chunk_its_path() -> None:
    els = [
        Element("Title", "Guide", depth=0),
        Element("NarrativeText", "intro"),
        Element("Title", "Install", depth=1),
        Element("NarrativeText", "pip install"),
        Element("Title", "Linux", depth=2),
        Element("NarrativeText", "apt"),
        Element("Title", "Usage", depth=1),
        Element("NarrativeText", "run it"),
    ]
    blocks = build_blocks(els)
    assert [b.section for b in blocks] == [
        ("Guide",),
        ("Guide", "Install"),
        ("Guide", "Install", "Linux"),
        ("Guide", "Usage"),
    ]


def test_list_items_stay_together_and_tables_whole(count: object) -> None:
    els = [
        Element("Title", "Checks", depth=0),
        Element("ListItem", "first"),
        Element("ListItem", "second"),
        Element("ListItem", "third"),
        Element("Table", "h1 h2 a b c d"),
    ]
    blocks = build_blocks(els)
    assert [b.kind for b in blocks] == ["list", "table"]
    assert blocks[0].text == "- first\n- second\n- third"
    chunks = chunk_elements(els, count, CONFIG)  # type: ignore[arg-type]
    assert len(chunks) == 1 and "h1 h2 a b c d" in chunks[0].text and "- third" in chunks[0].text


def test_long_sections_pack_between_min_and_max_with_overlap(count: Sequence[object]) -> None:
    els = [Element("Title", "Study", depth=0)]
    els += [Element("NarrativeText", _sentences(f"topic {p}", 12)) for p in range(10)]
    chunks = chunk_elements(els, count, CONFIG)  # type: ignore[arg-type]
    assert len(chunks) >= 3
    for c in chunks[:-1]:
        assert CONFIG.min_tokens <= c.token_count <= CONFIG.max_tokens + CONFIG.overlap_tokens * 2
        assert c.section_path == ["Study"]
    # consecutive chunks share their boundary sentences
    for a, b in itertools.pairwise(chunks):
        tail = split_sentences(a.text)[-1]
        assert tail in b.text


def test_oversized_paragraph_is_split_at_sentences(count: object) -> None:
    els = [Element("NarrativeText", _sentences("one long paragraph", 80))]
    chunks = chunk_elements(els, count, CONFIG)  # type: ignore[arg-type]
    assert len(chunks) >= 2
    assert all(c.token_count <= CONFIG.max_tokens + 2 * CONFIG.overlap_tokens for c in chunks)
    assert all(c.text.rstrip().endswith(".") for c in chunks)


def test_small_sections_merge_forward_rather_than_scraps(count: object) -> None:
    els = []
    for i in range(6):
        els += [Element("Title", f"S{i}", depth=1), Element("NarrativeText", f"Short section {i}.")]
    chunks = chunk_elements(els, count, CONFIG)  # type: ignore[arg-type]
    assert len(chunks) == 1
    assert chunks[0].section_path == ["S0"]


def test_a_title_with_nothing_under_it_is_kept_as_text(count: object) -> None:
    # A one-line file is a lone Title to the partitioner: it used to become a section of no text.
    assert [(b.text, b.section) for b in build_blocks([Element("Title", "hello world policy text")])] == [
        ("hello world policy text", ())
    ]
    chunks = chunk_elements([Element("Title", "hello world policy text")], count, CONFIG)  # type: ignore[arg-type]
    assert [c.text for c in chunks] == ["hello world policy text"]
    # An empty heading between sections and a trailing one stay, in their parent's section.
    els = [
        Element("Title", "Guide", depth=0),
        Element("NarrativeText", "intro"),
        Element("Title", "Empty", depth=1),
        Element("Title", "Usage", depth=1),
        Element("NarrativeText", "run it"),
        Element("Title", "Appendix", depth=1),
    ]
    assert [(b.text, b.section) for b in build_blocks(els)] == [
        ("intro", ("Guide",)),
        ("Empty", ("Guide",)),
        ("run it", ("Guide", "Usage")),
        ("Appendix", ("Guide",)),
    ]
    # Headings that do have content under them (at any depth) are section paths only, as before.
    nested = [Element("Title", "Guide", depth=0), Element("Title", "Install", depth=1), Element("NarrativeText", "pip")]
    assert [(b.text, b.section) for b in build_blocks(nested)] == [("pip", ("Guide", "Install"))]
