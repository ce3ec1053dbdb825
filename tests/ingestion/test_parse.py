from __future__ import annotations

import io
from pathlib import Path

import pikepdf
import pytest

from ingestion.parse import parse_document
from keel.errors import CorruptFile, EncryptedFile, NoContent, NotText
from tests.conftest import SAMPLES

LIMIT = 10_000_000


@pytest.mark.parametrize(
    ("name", "title", "first_kinds"),
    [
        ("keel-overview.md", "Keel overview", ["Title", "NarrativeText", "Title"]),
        ("security.html", "Security model", ["Title", "NarrativeText", "Title"]),
        ("release-checklist.docx", "Release checklist", ["Title", "NarrativeText", "Title"]),
        ("faq.txt", "KEEL FAQ", ["Title"]),
    ],
)
def test_supported_types_parse_into_typed_elements(name: str, title: str, first_kinds: list[str]) -> None:
    doc = parse_document((SAMPLES / name).read_bytes(), name, LIMIT)
    assert doc.title == title
    assert [e.kind for e in doc.elements[: len(first_kinds)]] == first_kinds


def test_pdf_fast_strategy_extracts_text_with_pages() -> None:
    doc = parse_document((SAMPLES / "latency-budget.pdf").read_bytes(), "latency-budget.pdf", LIMIT)
    text = " ".join(e.text for e in doc.elements)
    assert "rerank_skipped" in text
    assert {e.page for e in doc.elements} == {1}


def test_markdown_lists_and_tables_survive() -> None:
    md = b"# T\n\n- one\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"
    kinds = [e.kind for e in parse_document(md, "x.md", LIMIT).elements]
    assert kinds == ["Title", "ListItem", "ListItem", "Table"]


def test_encrypted_pdf_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "enc.pdf"
    with pikepdf.open(SAMPLES / "latency-budget.pdf") as pdf:
        pdf.save(out, encryption=pikepdf.Encryption(owner="o", user="u"))
    with pytest.raises(EncryptedFile):
        parse_document(out.read_bytes(), "enc.pdf", LIMIT)


@pytest.mark.parametrize(
    ("data", "name", "error"),
    [
        (b"%PDF-1.4 this is not really a pdf", "broken.pdf", CorruptFile),
        (b"hello, I am text", "fake.pdf", CorruptFile),
        (b"not a zip archive", "fake.docx", CorruptFile),
        (bytes(range(256)) * 8, "junk.txt", NotText),
        (b"   \n\n  \n", "blank.md", NoContent),
    ],
)
def test_bad_files_get_specific_errors(data: bytes, name: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_document(data, name, LIMIT)


def test_truncated_pdf_is_corrupt() -> None:
    data = (SAMPLES / "latency-budget.pdf").read_bytes()
    with pytest.raises((CorruptFile, NoContent)):
        parse_document(data[: len(data) // 3], "cut.pdf", LIMIT)


def test_image_only_pdf_has_no_content() -> None:
    buf = io.BytesIO()
    pdf = pikepdf.new()
    pdf.add_blank_page()
    pdf.save(buf)
    with pytest.raises(NoContent):
        parse_document(buf.getvalue(), "scan.pdf", LIMIT)
