"""Near-duplicate checks on both paths compare the same words, shingles and signatures."""

from __future__ import annotations

from encoders.text import (
    decode_signature,
    encode_signature,
    fingerprint,
    jaccard,
    normalise,
    shingles,
    signature,
    similarity,
)

TEXT = "Run keel ingest again on the same paths; files that failed are tried again, the rest skipped."


def test_spacing_case_and_punctuation_do_not_make_a_paragraph_new() -> None:
    other = "run KEEL ingest again, on the same paths: files that failed are tried again; the rest skipped"
    assert normalise(TEXT) == normalise(other)
    assert fingerprint(normalise(TEXT)) == fingerprint(normalise(other))
    assert jaccard(shingles(TEXT), shingles(other)) == 1.0


def test_signatures_estimate_similarity_and_survive_storage() -> None:
    a = signature(normalise(TEXT))
    b = signature(normalise(TEXT.replace("skipped", "kept")))
    c = signature(normalise("An unrelated sentence about tides, lasers and volcanoes in the north."))
    assert similarity(a, b) > similarity(a, c)
    assert similarity(a, decode_signature(encode_signature(a))) == 1.0
