"""Structure-aware chunking.

Titles open sections (each chunk keeps its section path), tables are kept whole, consecutive list
items stay together, and paragraphs are packed up to `max_tokens`. A chunk that ends because it is
full carries the last sentences (about `overlap_tokens`) into the next one, so a fact that spans
the cut is still whole in one chunk. A new section closes the current chunk once it has
`min_tokens`; smaller sections are merged forward rather than emitted as scraps.

Tokens are counted with the embedding model's own tokenizer, so the sizes are what the model sees.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ingestion.parse import Element

CHUNKER_VERSION = "c1"

TokenCounter = Callable[[Sequence[str]], list[int]]

_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+(?=[\"'(\[]?[A-Z0-9])|\n+")


@dataclass
class Block:
    text: str
    kind: str  # paragraph | list | table
    section: tuple[str, ...]
    page: int | None
    tokens: int = 0


@dataclass
class Chunk:
    index: int
    text: str
    section_path: list[str]
    token_count: int
    pages: list[int] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Chunk:
        return Chunk(**d)


@dataclass(frozen=True)
class ChunkConfig:
    min_tokens: int = 400
    max_tokens: int = 800
    overlap_tokens: int = 80


def build_blocks(elements: Sequence[Element]) -> list[Block]:
    """Elements -> blocks: sections from titles, lists merged, tables atomic.

    A title lives on in the section path of what follows it. A title nothing follows (a one-line
    file, which the partitioner calls a Title; a heading-only page; a trailing heading) becomes a
    paragraph of its parent section instead, so no text of a document is lost. Documents whose
    every heading has content under it chunk exactly as before.
    """
    stack: list[str] = []
    filled: list[bool] = []  # per open title: has any block been emitted under it
    blocks: list[Block] = []

    def close_to(depth: int, page: int | None) -> None:
        nonlocal stack, filled
        while len(stack) > depth:
            title, had_content = stack.pop(), filled.pop()
            if not had_content:
                blocks.append(Block(title, "paragraph", tuple(stack), page))
                filled = [True] * len(filled)

    for el in elements:
        text = el.text.strip()
        if not text:
            continue
        if el.kind == "Title":
            depth = min(max(0, el.depth or 0), len(stack))
            close_to(depth, el.page)
            stack.append(text)
            filled.append(False)
            continue
        filled = [True] * len(filled)
        section = tuple(stack)
        if el.kind == "ListItem":
            prev = blocks[-1] if blocks else None
            if prev and prev.kind == "list" and prev.section == section:
                prev.text += f"\n- {text}"
                continue
            blocks.append(Block(f"- {text}", "list", section, el.page))
        elif el.kind == "Table":
            blocks.append(Block(text, "table", section, el.page))
        else:
            blocks.append(Block(text, "paragraph", section, el.page))
    close_to(0, blocks[-1].page if blocks else None)
    return blocks


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def chunk_elements(elements: Sequence[Element], count: TokenCounter, config: ChunkConfig) -> list[Chunk]:
    blocks = build_blocks(elements)
    if not blocks:
        return []
    for block, n in zip(blocks, count([b.text for b in blocks]), strict=True):
        block.tokens = n
    pieces = [p for b in blocks for p in _split_oversized(b, count, config.max_tokens)]
    return _pack(pieces, count, config)


def _split_oversized(block: Block, count: TokenCounter, max_tokens: int) -> list[Block]:
    """A block over the limit is cut at sentence (or list-item) boundaries; word windows last."""
    if block.tokens <= max_tokens:
        return [block]
    units = block.text.split("\n") if block.kind in {"list", "table"} else split_sentences(block.text)
    if len(units) <= 1:
        units = _word_windows(block.text, max_tokens // 2)
    sizes = count(units)
    out: list[Block] = []
    cur: list[str] = []
    cur_tokens = 0
    for unit, n in zip(units, sizes, strict=True):
        if n > max_tokens:  # one enormous sentence: fall back to word windows
            for w in _word_windows(unit, max_tokens // 2):
                out.append(Block(w, block.kind, block.section, block.page, count([w])[0]))
            continue
        if cur and cur_tokens + n > max_tokens:
            out.append(Block(_join(block.kind, cur), block.kind, block.section, block.page, cur_tokens))
            cur, cur_tokens = [], 0
        cur.append(unit)
        cur_tokens += n
    if cur:
        out.append(Block(_join(block.kind, cur), block.kind, block.section, block.page, cur_tokens))
    return out


def _join(kind: str, units: list[str]) -> str:
    return "\n".join(units) if kind in {"list", "table"} else " ".join(units)


def _word_windows(text: str, words_per_window: int) -> list[str]:
    words = text.split()
    step = max(1, words_per_window)
    return [" ".join(words[i : i + step]) for i in range(0, len(words), step)]


def _pack(blocks: list[Block], count: TokenCounter, config: ChunkConfig) -> list[Chunk]:
    chunks: list[Chunk] = []
    cur: list[Block] = []
    cur_tokens = 0

    def flush() -> None:
        nonlocal cur, cur_tokens
        if cur:
            text = "\n\n".join(b.text for b in cur)
            pages = sorted({b.page for b in cur if b.page is not None})
            kinds = sorted({b.kind for b in cur})
            chunks.append(Chunk(len(chunks), text, list(cur[0].section), count([text])[0], pages, kinds))
        cur, cur_tokens = [], 0

    for block in blocks:
        new_section = bool(cur) and block.section != cur[-1].section
        if new_section and cur_tokens >= config.min_tokens:
            flush()
        elif cur and cur_tokens + block.tokens > config.max_tokens:
            tail = _overlap_tail(cur[-1], count, config.overlap_tokens) if not new_section else None
            flush()
            if tail is not None and tail.tokens + block.tokens <= config.max_tokens:
                cur, cur_tokens = [tail], tail.tokens
        cur.append(block)
        cur_tokens += block.tokens
    flush()
    return chunks


def _overlap_tail(block: Block, count: TokenCounter, overlap_tokens: int) -> Block | None:
    """The last sentences of a prose block, about `overlap_tokens` long; tables and lists carry none."""
    if block.kind != "paragraph" or overlap_tokens <= 0:
        return None
    sentences = split_sentences(block.text)
    sizes = count(sentences)
    taken: list[str] = []
    total = 0
    for sentence, n in zip(reversed(sentences), reversed(sizes), strict=True):
        if taken and total + n > overlap_tokens * 1.25:
            break
        taken.insert(0, sentence)
        total += n
        if total >= overlap_tokens:
            break
    if not taken or total > overlap_tokens * 2:
        return None
    return Block(" ".join(taken), "paragraph", block.section, block.page, total)
