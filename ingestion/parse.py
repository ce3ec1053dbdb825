"""Parse a file's bytes into typed elements with unstructured (offline, fast strategies only)."""

from __future__ import annotations

import io
import logging
import re
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from ingestion.files import TEXT_KINDS, classify, decode_text
from keel import offline
from keel.errors import CorruptFile, EncryptedFile, FileTooLarge, NoContent

log = logging.getLogger(__name__)

_patched = False


@dataclass
class Element:
    kind: str  # Title, NarrativeText, ListItem, Table, ...
    text: str
    depth: int | None = None  # heading level for titles
    page: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Element:
        return Element(**d)


@dataclass
class ParsedDocument:
    elements: list[Element]
    title: str
    encoding: str | None = None


def _ensure_offline() -> None:
    global _patched
    if not _patched:
        offline.patch_unstructured()
        _patched = True


def parse_document(
    data: bytes, filename: str, max_bytes: int, decode_legacy: bool = True, max_inflated: int = 0
) -> ParsedDocument:
    """Bytes -> elements. Raises a specific `keel.errors.BadInput` for anything unusable; a
    compressed format that would inflate past `max_inflated` bytes (0: no cap) is `file_too_large`."""
    _ensure_offline()
    kind = classify(filename, len(data), max_bytes).kind
    encoding = None
    simple: list[Element] | None = None  # the fast path's elements (simple Markdown)
    if kind == "pdf":
        raw = _partition_pdf(data)
    elif kind == "docx":
        raw = _partition_docx(data, max_inflated)
    else:
        assert kind in TEXT_KINDS
        text, encoding = decode_text(data, allow_legacy=decode_legacy)
        simple = _simple_md(text) if kind == "md" else None
        raw = [] if simple is not None else _partition_text_kind(kind, text)
    elements = simple if simple is not None else [_to_element(e) for e in raw]
    elements = [e for e in elements if e.text.strip()]
    if not elements:
        raise NoContent(
            "the PDF holds no extractable text (a scanned PDF needs OCR, which is not enabled)"
            if kind == "pdf"
            else f"the {kind.upper() if kind == 'docx' else kind} file holds no text to index (it is empty or only whitespace)"
        )
    title = next((e.text for e in elements if e.kind == "Title"), None) or filename
    return ParsedDocument(elements=elements, title=title[:300], encoding=encoding)


def _simple_md(text: str) -> list[Element] | None:
    """Headings and plain paragraphs: the same elements without a full partition (`simple_md`)."""
    from ingestion.simple_md import partition_simple_md

    return partition_simple_md(text)


def _to_element(e: Any) -> Element:
    meta = e.metadata
    return Element(kind=e.category, text=str(e), depth=meta.category_depth, page=meta.page_number)


def _partition_text_kind(kind: str, text: str) -> list[Any]:
    from unstructured.partition.email import partition_email
    from unstructured.partition.html import partition_html
    from unstructured.partition.md import partition_md
    from unstructured.partition.text import partition_text
    from unstructured.partition.xml import partition_xml

    partitioners: dict[str, Callable[..., list[Any]]] = {
        "html": partition_html,
        "md": partition_md,
        "text": partition_text,
        "xml": partition_xml,
        "email": partition_email,
    }
    try:
        if kind == "email":  # partition_email takes no text, only a file (or a path)
            return partition_email(file=io.BytesIO(text.encode("utf-8")))
        return partitioners[kind](text=text)
    except MemoryError:
        raise
    except Exception as exc:  # unstructured raises many types for malformed markup
        raise CorruptFile(f"could not parse the {kind} file: its markup is malformed ({_reason(exc)})") from exc


def _partition_pdf(data: bytes) -> list[Any]:
    import pypdf
    from pypdf.errors import PdfReadError

    if not data.lstrip()[:5].startswith(b"%PDF-"):
        raise CorruptFile("the file has a .pdf name but is not a PDF (no %PDF- header)")
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise EncryptedFile("the PDF is encrypted; remove the password and ingest it again")
        pages = len(reader.pages)
    except EncryptedFile:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise CorruptFile(f"the PDF is damaged and cannot be read ({_reason(exc)})") from exc
    if pages == 0:
        raise NoContent("the PDF has no pages")
    from unstructured.partition.pdf import partition_pdf

    try:
        return partition_pdf(file=io.BytesIO(data), strategy="fast")
    except MemoryError:
        raise  # a bomb, not a damaged file: the process's memory cap says so (ingestion.offload)
    except Exception as exc:
        raise CorruptFile(f"the PDF could not be parsed ({_reason(exc)})") from exc


def _partition_docx(data: bytes, max_inflated: int = 0) -> list[Any]:
    if not data.startswith(b"PK\x03\x04"):
        raise CorruptFile("the file has a .docx name but is not a DOCX (not a zip archive)")
    _check_inflation(data, max_inflated)
    from unstructured.partition.docx import partition_docx

    try:
        return partition_docx(file=io.BytesIO(data))
    except MemoryError:
        raise
    except Exception as exc:
        raise CorruptFile(f"the DOCX is damaged or not a Word document ({_reason(exc)})") from exc


MAX_ZIP_MEMBERS = 10_000


def _check_inflation(data: bytes, max_inflated: int) -> None:
    """A zip's members must inflate to at most `max_inflated` bytes in all. The sizes its directory
    declares are the bound: Python's zip reader never reads a member past its declared size (a
    member that inflates further fails its check), and the partitioner reads through it."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise CorruptFile(f"the DOCX is damaged or not a Word document ({_reason(exc)})") from exc
    if len(members) > MAX_ZIP_MEMBERS:
        raise FileTooLarge(f"the archive holds {len(members):,} parts; the limit is {MAX_ZIP_MEMBERS:,}")
    inflated = sum(m.file_size for m in members)
    if max_inflated and inflated > max_inflated:
        raise FileTooLarge(
            f"the file inflates to {inflated:,} bytes; the limit is {max_inflated:,} (KEEL_MAX_INFLATED_BYTES)"
        )


_OBJECT_REPR = re.compile(r"<[^<>]*\bat 0x[0-9a-fA-F]+>")
_PATH = re.compile(r"(?<![\w./-])(?:/[\w.-]+){2,}")  # from a path's start only: linear


def _reason(exc: BaseException) -> str:
    """What went wrong, for a person: the library's error type and a short message with no
    object reprs, memory addresses or server paths in it."""
    text = _OBJECT_REPR.sub("the upload", str(exc))
    text = _PATH.sub("<path>", text).strip()[:160]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
