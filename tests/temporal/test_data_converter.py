"""Keel's data converter: the same JSON as Temporal's default one, and one TypeAdapter per type."""

from __future__ import annotations

import json
from typing import Any

import pytest
from temporalio.converter import DataConverter

from contracts.ingest import DocumentRef, IngestDocumentInput, IngestDocumentOutput
from contracts.query import ContextOutput, ContextPassage, GenerateInput, QueryFilters, QueryInput, RetrieveInput
from temporal.data_converter import DATA_CONVERTER, type_adapter

PASSAGES = [
    ContextPassage(
        ref=i + 1,
        doc_id=f"doc{i}",
        version="v1",
        source="faq.txt",
        title="FAQ",
        section_path=["Retry"],
        chunk_indexes=[i, i + 1],
        text="text " * 50,
        score=0.5,
    )
    for i in range(3)
]
VALUES: list[Any] = [
    RetrieveInput(
        query=QueryInput(
            request_id="r1",
            tenant="acme",
            groups=["eng"],
            question="why?",
            filters=QueryFilters(sources=["a"]),
            json_schema={"type": "object"},
        )
    ),
    ContextOutput(passages=PASSAGES, tokens=300, dropped_duplicates=1, dropped_over_budget=2, confidence=0.7, ms=5.5),
    GenerateInput(
        request_id="r1",
        tenant="acme",
        question="why?",
        passages=PASSAGES,
        confidence=0.7,
        response_format="json",
        json_schema={"type": "object"},
        route=None,
        stream=True,
        max_output_tokens=256,
        deadline_ms=900.0,
    ),
    IngestDocumentInput(
        doc=DocumentRef(
            tenant="acme",
            groups=["eng"],
            source="/a/b.md",
            filename="b.md",
            version="ab" * 32,
            blob_key="blobs/x",
            size=12,
        )
    ),
    IngestDocumentOutput(
        doc_id="d1", version="v1", status="ingested", chunks=3, duplicates=1, pii={"EMAIL_ADDRESS": 2}, generation=4
    ),
]


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_payloads_are_interchangeable_with_the_default_converter(value: Any) -> None:
    """Histories written before the switch replay, and other SDKs' default decoders read ours."""
    default = DataConverter.default.payload_converter
    ours = DATA_CONVERTER.payload_converter
    theirs_payload = default.to_payloads([value])
    our_payload = ours.to_payloads([value])
    assert json.loads(our_payload[0].data) == json.loads(theirs_payload[0].data)
    assert ours.from_payloads(theirs_payload, [type(value)]) == [value]
    assert default.from_payloads(our_payload, [type(value)]) == [value]


def test_type_adapters_survive_the_per_activation_converters() -> None:
    """The worker builds a new data converter from the payload converter class for each workflow
    activation (worker/_workflow.py, _CommandAwareDataConverter); an adapter cache per instance
    rebuilt the adapter (~3 ms) for every payload."""
    payloads = DATA_CONVERTER.payload_converter.to_payloads([VALUES[1]])
    type_adapter.cache_clear()
    for _ in range(3):
        converter = DataConverter(payload_converter_class=DATA_CONVERTER.payload_converter_class)
        assert converter.payload_converter.from_payloads(payloads, [ContextOutput]) == [VALUES[1]]
    info = type_adapter.cache_info()
    assert (info.misses, info.hits) == (1, 2)
