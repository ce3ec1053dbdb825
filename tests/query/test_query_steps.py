"""The query steps as pure functions: fusion, context packing, extraction, validation, prompts, routing."""

from __future__ import annotations

import pytest

from generation import prompts
from generation.extractive import ExtractiveAnswerer, pick
from generation.providers import GenerationRequest
from generation.router import CHEAP, CLARIFY, NO_SOURCES, STRONG, RoutingConfig, choose_route
from generation.validate import check_citations, check_json
from keel.query_contracts import Candidate, ContextPassage, Scored
from retrieval.context import ContextConfig, pack
from retrieval.rerank import FusionReranker


def _cand(pid: str, text: str, doc: str = "d", index: int = 0) -> Candidate:
    return Candidate(pid, doc, "v1", f"{doc}.md", "Title", ["Title"], index, text, len(text.split()), "emb")


def _count(text: str) -> int:
    return len(text.split())


def _truncate(text: str, n: int) -> str:
    return " ".join(text.split()[:n])


def test_fusion_keeps_score_gaps_that_rrf_drops() -> None:
    scored = [
        Scored("a", "d", dense=0.50, sparse=30.0, fused=0.033),  # strong on BM25 only
        Scored("b", "d", dense=0.90, sparse=10.0, fused=0.032),  # far ahead on dense
        Scored("c", "d", dense=None, sparse=12.0, fused=0.016),  # missing from the dense list
    ]
    dense_first = FusionReranker(0.8).rerank("q", scored, {}, deadline=0)
    assert [s.point_id for s in dense_first] == ["b", "a", "c"]
    lexical_first = FusionReranker(0.2).rerank("q", scored, {}, deadline=0)
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
    scored = [Scored(p, cands[p].doc_id, fused=1.0 - i / 10) for i, p in enumerate("abcd")]
    packed = pack(scored, cands, ContextConfig(token_budget=30, window_hits=0), _count, _truncate)
    assert [p.doc_id for p in packed.passages] == ["d1", "d3"]
    assert packed.dropped_duplicates == 1 and packed.dropped_over_budget == 1
    assert packed.tokens <= 30 and sum(_count(p.text) for p in packed.passages) <= 30
    assert [p.ref for p in packed.passages] == [1, 2]


def test_context_widens_best_hits_with_neighbours_and_cuts_an_oversized_one() -> None:
    hit = _cand("h", "the middle chunk", "d1", index=5)
    near = [_cand("p", "the previous chunk", "d1", 4), _cand("n", "the next chunk", "d1", 6)]
    packed = pack([Scored("h", "d1", fused=1.0)], {"h": hit}, ContextConfig(100), _count, _truncate, lambda c, w: near)
    assert packed.passages[0].chunk_indexes == [4, 5, 6]
    assert packed.passages[0].text.splitlines() == ["the previous chunk", "the middle chunk", "the next chunk"]

    big = _cand("g", " ".join(f"w{i}" for i in range(100)))
    cut = pack([Scored("g", "d", fused=1.0)], {"g": big}, ContextConfig(10), _count, _truncate)
    assert cut.tokens == 10 and cut.passages[0].text.split() == [f"w{i}" for i in range(10)]


def _passages() -> list[ContextPassage]:
    return [
        ContextPassage(1, "d1", "v", "faq.txt", "FAQ", [], [0], "Keel stores vectors in Qdrant. It is fast.", 0.9),
        ContextPassage(
            2, "d2", "v", "run.md", "Runbook", [], [0], "Failed files are retried by running keel ingest again.", 0.5
        ),
    ]


def test_extractive_answer_picks_and_cites_the_answering_sentence() -> None:
    picked = pick("How are failed files retried?", _passages())
    assert picked[0] == (2, "Failed files are retried by running keel ingest again.")
    gen = ExtractiveAnswerer().generate(GenerationRequest("p", "How are failed files retried?", _passages(), 5, 1.0))
    assert len(gen.text.split()) <= 5  # the output limit holds


def test_citations_are_checked_against_the_passages() -> None:
    text = "Failed files are retried by running keel ingest again [2]. Keel runs on the moon [1]. Extra [7]."
    checked = check_citations(text, _passages())
    assert checked.invalid_refs == [7] and "[7]" not in checked.text
    assert [c.ref for c in checked.citations] == [2, 1]
    assert checked.supported_rate == 0.5 and checked.unsupported == ["Keel runs on the moon [1]."]


def test_json_is_validated_and_repaired_once() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    assert check_json('{"n": 3}', schema).value == {"n": 3}
    fixed = check_json('Sure! ```json\n{"n": 3,}\n```', schema)
    assert fixed.repaired and fixed.value == {"n": 3} and fixed.error is None
    wrong = check_json('{"n": "three"}', schema)
    assert wrong.error and "schema" in wrong.error


def test_prompts_have_ids_and_hash_what_was_rendered() -> None:
    one = prompts.render("What is {context}?", _passages())
    assert one.prompt_id == "answer.v1" and "[2] (Runbook)" in one.text and "What is {context}?" in one.text
    assert one.hash != prompts.render("Another question?", _passages()).hash
    assert prompts.render("q", _passages(), {"type": "object"}).prompt_id == "answer-json.v1"


@pytest.mark.parametrize(
    ("question", "confidence", "passages", "route"),
    [
        ("anything", 0.9, 0, NO_SOURCES),
        ("anything", 0.05, 3, CLARIFY),
        ("How do I retry?", 0.8, 3, CHEAP),
        (
            "Compare the retry semantics of batch and single-document ingestion and explain every trade-off an operator should weigh in detail",
            0.8,
            3,
            STRONG,
        ),
        ("How do I retry?", 0.4, 3, STRONG),
    ],
)
def test_routing(question: str, confidence: float, passages: int, route: str) -> None:
    assert choose_route(question, confidence, passages, RoutingConfig()) == route
