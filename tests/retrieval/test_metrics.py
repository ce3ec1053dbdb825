"""BEIR metrics against hand-computed values, and the two qrels layouts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from evaluation.beir import load_split, write_documents
from retrieval.golden import document_name
from retrieval.metrics import dedupe, mrr, ndcg, recall, summarise


def test_metrics_match_hand_computed_values() -> None:
    rels = {"a": 1, "c": 1}
    ranked = ["b", "a", "d", "c"]
    ideal = 1 + 1 / math.log2(3)
    assert ndcg(ranked, rels, 10) == pytest.approx((1 / math.log2(3) + 1 / math.log2(5)) / ideal)
    assert ndcg(["a", "c"], rels, 10) == pytest.approx(1.0)
    assert recall(ranked, rels, 2) == 0.5 and recall(ranked, rels, 100) == 1.0
    assert mrr(ranked, rels, 10) == 0.5 and mrr(["x"], rels, 10) == 0.0
    assert dedupe(["a", "a", "b", "a"]) == ["a", "b"]  # chunks -> documents at their best rank
    # a judged query that was never run counts as zero
    assert summarise({"q1": ["a", "c"]}, {"q1": rels, "q2": rels})["ndcg@10"] == pytest.approx(0.5)


def test_both_qrels_layouts_load(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "corpus.jsonl").write_text(json.dumps({"_id": "d1", "title": "T", "text": "body"}) + "\n")
    (flat / "queries.jsonl").write_text(json.dumps({"_id": "1", "text": "test q"}) + "\n")
    (flat / "queries_all.jsonl").write_text(
        json.dumps({"_id": "1", "text": "test q"}) + "\n" + json.dumps({"_id": "2", "text": "train q"}) + "\n"
    )
    (flat / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n1\td1\t1\n")
    (flat / "qrels_train.tsv").write_text("query-id\tcorpus-id\tscore\n2\td1\t1\n")
    assert load_split(flat, "test").queries == {"1": "test q"}
    assert load_split(flat, "train").queries == {"2": "train q"}

    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    (beir / "queries.jsonl").write_text(json.dumps({"_id": "1", "text": "q"}) + "\n")
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n1\td1\t2\n")
    assert load_split(beir, "test").qrels == {"1": {"d1": 2}}

    (path,) = write_documents(flat, tmp_path / "docs")
    assert path.name == "d1.md" and path.read_text() == "# T\n\nbody\n"


def test_a_hit_is_named_the_way_the_golden_set_names_its_document() -> None:
    assert document_name("samples/corpus/faq.txt", {"samples/corpus/faq.txt": 1}) == "samples/corpus/faq.txt"
    assert document_name("samples/corpus/faq.txt", {"faq.txt": 1}) == "faq.txt"
    assert document_name("corpus/4983.md", {"4983": 2}) == "4983"  # a BEIR corpus id
