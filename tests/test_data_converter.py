"""Keel's data converter: the same JSON as Temporal's default one, and one TypeAdapter per type."""

from __future__ import annotations

import json
from typing import Any

import pytest
from temporalio.converter import DataConverter

from keel.contracts import DocumentRef, IngestDocumentInput, IngestDocumentOutput
from keel.data_converter import DATA_CONVERTER, type_adapter
from keel.query_contracts import ContextOutput, ContextPassage, GenerateInput, QueryFilters, QueryInput, RetrieveInput

PASSAGES = [
    ContextPassage(i + 1, f"doc{i}", "v1", "faq.txt", "FAQ", ["Retry"], [i, i + 1], "text " * 50, 0.5) for i in range(3)
]
VALUES: list[Any] = [
    RetrieveInput(
        QueryInput("r1", "acme", ["eng"], "why?", QueryFilters(sources=["a"]), json_schema={"type": "object"})
    ),
    ContextOutput(PASSAGES, 300, 1, 2, 0.7, 5.5),
    GenerateInput("r1", "acme", "why?", PASSAGES, 0.7, "json", {"type": "object"}, None, True, 256, 900.0),
    IngestDocumentInput(DocumentRef("acme", ["eng"], "/a/b.md", "b.md", "ab" * 32, "blobs/x", 12)),
    IngestDocumentOutput("d1", "v1", "ingested", 3, 1, {"EMAIL_ADDRESS": 2}, 4),
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
