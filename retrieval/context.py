"""Pack re-scored candidates into the prompt's context: no near-duplicates, a token budget, windows.

Best hits come first. A candidate whose text is a near-duplicate of one already taken (Jaccard
over word 5-shingles) is dropped: the same paragraph copied into two documents is shown and cited
once. The best few hits are widened with their neighbouring chunks of the same document version
(a sliding window), because an answer often straddles a chunk boundary. Passages are added while
they fit the token budget, counted with the embedding model's tokenizer; nothing beyond the
budget reaches the prompt (a best hit larger than the whole budget is cut to it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from contracts.query import Candidate, ContextPassage, Scored
from encoders.text import jaccard, shingles

DUPLICATE_JACCARD = 0.8
MIN_PASSAGE_TOKENS = 16  # less room than this left: the context is full


@dataclass(frozen=True)
class ContextConfig:
    token_budget: int
    window_hits: int = 3  # how many best hits get their neighbours
    window: int = 1  # chunks either side
    duplicate_jaccard: float = DUPLICATE_JACCARD


Neighbours = Callable[[Candidate, int], list[Candidate]]  # (hit, window) -> same-version chunks near it
CountTokens = Callable[[str], int]
Truncate = Callable[[str, int], str]


class TokenCounts:
    """Token counts of passage texts for one packing, counted in batches: one tokenizer call for
    the texts the packing is likely to take (`prime`), then one per text it did not foresee. A
    call per text cost a query ~6 ms of the tokenizer's per-call overhead."""

    def __init__(self, count_many: Callable[[Sequence[str]], list[int]]) -> None:
        self._count_many = count_many
        self._counts: dict[str, int] = {}

    def prime(self, texts: Sequence[str]) -> None:
        missing = [t for t in dict.fromkeys(texts) if t not in self._counts]
        if missing:
            self._counts.update(zip(missing, self._count_many(missing), strict=True))

    def __call__(self, text: str) -> int:
        if text not in self._counts:
            self.prime([text])
        return self._counts[text]


def chunks_cost(chunks: Sequence[Candidate], count_tokens: CountTokens) -> int:
    """What chunks joined by newlines cost: each chunk's count (stored at ingest, counted with the
    tokenizer that chunked it; counted here when missing), and one token per join at most (a
    word-piece tokenizer splits at the newline anyway; a sentence-piece one may add a piece)."""
    return sum(c.token_count or count_tokens(c.text) for c in chunks) + len(chunks) - 1


@dataclass
class Packed:
    passages: list[ContextPassage]
    tokens: int
    dropped_duplicates: int
    dropped_over_budget: int


def pack(
    scored: Sequence[Scored],
    candidates: dict[str, Candidate],
    config: ContextConfig,
    count_tokens: CountTokens,
    truncate: Truncate,
    neighbours: Neighbours | None = None,
) -> Packed:
    passages: list[ContextPassage] = []
    seen: list[frozenset[str]] = []
    used_chunks: set[tuple[str, str, int]] = set()
    tokens = duplicates = over = 0
    for rank, s in enumerate(scored):
        if config.token_budget - tokens < MIN_PASSAGE_TOKENS and passages:
            over += len(scored) - rank  # full: the rest cannot fit
            break
        hit = candidates.get(s.point_id)
        if hit is None or (hit.doc_id, hit.version, hit.chunk_index) in used_chunks:
            continue
        # The stored token count (same tokenizer, counted at ingest) rules out what cannot fit
        # before any shingling or tokenizing is spent on it.
        if passages and tokens + (hit.token_count or count_tokens(hit.text)) > config.token_budget:
            over += 1
            continue
        sh = shingles(hit.text)
        if any(jaccard(sh, other) >= config.duplicate_jaccard for other in seen):
            duplicates += 1
            continue
        chunks = [hit]
        if neighbours is not None and rank < config.window_hits and config.window > 0:
            near = [
                c for c in neighbours(hit, config.window) if (c.doc_id, c.version, c.chunk_index) not in used_chunks
            ]
            chunks = sorted([hit, *near], key=lambda c: c.chunk_index)
        text = "\n".join(c.text for c in chunks)
        cost = chunks_cost(chunks, count_tokens)
        if tokens + cost > config.token_budget and len(chunks) > 1:  # the window does not fit: the hit alone
            chunks, text = [hit], hit.text
            cost = chunks_cost(chunks, count_tokens)
        if tokens + cost > config.token_budget:
            if passages:
                over += 1
                continue
            text = truncate(text, config.token_budget)  # the best hit alone is over the whole budget
            cost = count_tokens(text)
        seen.append(sh)
        used_chunks.update((c.doc_id, c.version, c.chunk_index) for c in chunks)
        tokens += cost
        passages.append(_passage(len(passages) + 1, s, hit, chunks, text))
    return Packed(passages, tokens, duplicates, over)


def _passage(ref: int, s: Scored, hit: Candidate, chunks: Sequence[Candidate], text: str) -> ContextPassage:
    return ContextPassage(
        ref=ref,
        doc_id=hit.doc_id,
        version=hit.version,
        source=hit.source,
        title=hit.title,
        section_path=hit.section_path,
        chunk_indexes=[c.chunk_index for c in chunks],
        text=text,
        score=s.rerank if s.rerank is not None else s.fused,
        flagged=_flagged([c.injection_flag for c in chunks]),
    )


def _flagged(flags: Sequence[bool | None]) -> bool | None:
    """True when a chunk is flagged, None when one was never checked, else False."""
    return True if any(flags) else (None if None in flags else False)


def confidence(scored: Sequence[Scored]) -> float:
    """0..1 from the best dense cosine (an absolute scale, unlike ranks or normalised scores).

    MiniLM cosines for a passage that answers a question sit around 0.5-0.8; unrelated text is
    below ~0.2. BM25-only hits with no dense score count as weak evidence.
    """
    dense = [s.dense for s in scored if s.dense is not None]
    if dense:
        return max(0.0, min(1.0, (max(dense) - 0.15) / 0.45))
    return 0.3 if scored else 0.0
