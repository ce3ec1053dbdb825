"""Retrieval's pure steps: fusion re-scoring and context packing."""

from __future__ import annotations

from collections.abc import Sequence

from contracts.query import Candidate, Scored
from retrieval.context import ContextConfig, TokenCounts, chunks_cost, pack
from retrieval.rerank import FusionReranker


def _cand(pid: str, text: str, doc: str = "d", index: int = 0) -> Candidate:
    return Candidate(
        point_id=pid,
        doc_id=doc,
        version="v1",
        source=f"{doc}.md",
        title="Title",
        section_path=["Title"],
        chunk_index=index,
        text=text,
        token_count=len(text.split()),
        embedding_version="emb",
    )


def _count(text: str) -> int:
    return len(text.split())


def _truncate(text: str, n: int) -> str:
    return " ".join(text.split()[:n])


def test_fusion_keeps_score_gaps_that_rrf_drops() -> None:
    scored = [
        Scored(point_id="a", doc_id="d", dense=0.50, sparse=30.0, fused=0.033),  # strong on BM25 only
        Scored(point_id="b", doc_id="d", dense=0.90, sparse=10.0, fused=0.032),  # far ahead on dense
        Scored(point_id="c", doc_id="d", dense=None, sparse=12.0, fused=0.016),  # missing from the dense list
    ]
    dense_first = FusionReranker("minmax", 0.8).rerank("q", scored, {}, deadline=0)
    assert [s.point_id for s in dense_first] == ["b", "a", "c"]
    lexical_first = FusionReranker("minmax", 0.2).rerank("q", scored, {}, deadline=0)
    assert lexical_first[0].point_id == "a"
    assert all(s.rerank is not None for s in dense_first)


def test_context_drops_near_duplicates_and_stays_within_the_budget() -> None:
    para = "Refunds are issued within thirty days of purchase to the original payment method only"
    cands = {
        "a": _cand("a", para, "d1"),
        "b": _cand("b", para + " here", "d2"),  # the same paragraph copied into another document
        "c": _cand("c", "Shipping takes five business days within the country by courier", "d3"),
        "d": _cand("d", " ".join(["word"] * 50), "d4"),
    }
    scored = [Scored(point_id=p, doc_id=cands[p].doc_id, fused=1.0 - i / 10) for i, p in enumerate("abcd")]
    packed = pack(scored, cands, ContextConfig(token_budget=30, window_hits=0), _count, _truncate)
    assert [p.doc_id for p in packed.passages] == ["d1", "d3"]
    assert packed.dropped_duplicates == 1 and packed.dropped_over_budget == 1
    assert packed.tokens <= 30 and sum(_count(p.text) for p in packed.passages) <= 30
    assert [p.ref for p in packed.passages] == [1, 2]


def test_context_widens_best_hits_with_neighbours_and_cuts_an_oversized_one() -> None:
    hit = _cand("h", "the middle chunk", "d1", index=5)
    near = [_cand("p", "the previous chunk", "d1", 4), _cand("n", "the next chunk", "d1", 6)]
    packed = pack(
        [Scored(point_id="h", doc_id="d1", fused=1.0)],
        {"h": hit},
        ContextConfig(100),
        _count,
        _truncate,
        lambda c, w: near,
    )
    assert packed.passages[0].chunk_indexes == [4, 5, 6]
    assert packed.passages[0].text.splitlines() == ["the previous chunk", "the middle chunk", "the next chunk"]

    big = _cand("g", " ".join(f"w{i}" for i in range(100)))
    cut = pack([Scored(point_id="g", doc_id="d", fused=1.0)], {"g": big}, ContextConfig(10), _count, _truncate)
    assert cut.tokens == 10 and cut.passages[0].text.split() == [f"w{i}" for i in range(10)]


def test_token_counts_are_batched_and_a_window_costs_its_parts() -> None:
    calls: list[list[str]] = []

    def count_many(texts: Sequence[str]) -> list[int]:
        calls.append(list(texts))
        return [len(t.split()) for t in texts]

    counts = TokenCounts(count_many)
    counts.prime(["a b", "c d e", "a b"])
    assert calls == [["a b", "c d e"]] and counts("c d e") == 3 and len(calls) == 1
    assert counts("f") == 1 and calls[-1] == ["f"]  # unforeseen: counted alone
    parts = [_cand("p", "a b", "d1", 0), _cand("q", "c d e", "d1", 1)]
    assert chunks_cost(parts, counts) == 2 + 3 + 1  # and one token per join at most


def test_a_stored_token_count_is_used_without_counting() -> None:
    counted: list[str] = []

    def count(text: str) -> int:
        counted.append(text)
        return len(text.split())

    stored = Candidate(**{**vars(_cand("s", "one two three", "d1")), "token_count": 7})
    assert chunks_cost([stored], count) == 7 and counted == []
    unknown = Candidate(**{**vars(_cand("t", "four five", "d1", 1)), "token_count": 0})  # ingested before counts
    assert chunks_cost([stored, unknown], count) == 7 + 2 + 1 and counted == ["four five"]
