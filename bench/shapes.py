"""Corpora of other shapes than one Markdown file per abstract, so ingest speed is not SciFact-shaped:
one large PDF (many pages, one document, many chunks) and a folder of mixed kinds (text,
Markdown, HTML, Word and PDF files in turn). Both are written from the same BEIR corpus."""

from __future__ import annotations

import html
import io
import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

LINES_PER_PAGE = 48
KINDS = ("txt", "md", "html", "docx", "pdf")


def _documents(dataset: Path) -> Iterator[tuple[str, str, str]]:
    with open(dataset / "corpus.jsonl") as f:
        for line in f:
            doc = json.loads(line)
            yield str(doc["_id"]), (doc.get("title") or "").strip(), (doc.get("text") or "").strip()


def pdf_bytes(pages: list[list[str]]) -> bytes:
    """A PDF of text pages (Helvetica, one line per string): what a report exported to PDF holds."""
    import pikepdf

    pdf = pikepdf.new()
    font = pdf.make_indirect(
        pikepdf.Dictionary(Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1, BaseFont=pikepdf.Name.Helvetica)
    )
    for lines in pages:
        page = pdf.add_blank_page(page_size=(612, 792))
        page.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font))
        shown = " T* ".join(f"({_pdf_string(line)}) Tj" for line in lines)
        page.Contents = pdf.make_stream(f"BT /F1 10 Tf 14 TL 54 740 Td {shown} ET".encode("latin-1"))
    buf = io.BytesIO()
    pdf.save(buf)
    return buf.getvalue()


def _pdf_string(line: str) -> str:
    text = line.encode("latin-1", errors="replace").decode("latin-1")
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def large_pdf(dataset: Path, out: Path, pages: int) -> Path:
    """One PDF of `pages` pages: abstracts one after another, each under its title, wrapped at 95."""
    lines: list[str] = []
    for _, title, text in _documents(dataset):
        lines += [*textwrap.wrap(title, 95), *textwrap.wrap(text, 95), ""]
        if len(lines) >= pages * LINES_PER_PAGE:
            break
    chunks = [lines[i : i + LINES_PER_PAGE] for i in range(0, pages * LINES_PER_PAGE, LINES_PER_PAGE)]
    out.mkdir(parents=True, exist_ok=True)
    path = out / "large-report.pdf"
    path.write_bytes(pdf_bytes(chunks))
    return path


def mixed_folder(dataset: Path, out: Path, files: int) -> list[Path]:
    """`files` documents, their kinds taken in turn from KINDS."""
    import docx

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (doc_id, title, text) in enumerate(_documents(dataset)):
        if i >= files:
            break
        kind = KINDS[i % len(KINDS)]
        path = out / f"{doc_id}.{kind}"
        if kind == "txt":
            path.write_text(f"{title}\n\n{text}\n")
        elif kind == "md":
            path.write_text(f"# {title}\n\n{text}\n")
        elif kind == "html":
            path.write_text(f"<html><body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>")
        elif kind == "docx":
            d = docx.Document()
            d.add_heading(title, level=1)
            d.add_paragraph(text)
            d.save(str(path))
        else:
            path.write_bytes(pdf_bytes([[*textwrap.wrap(title, 95), "", *textwrap.wrap(text, 95)]]))
        paths.append(path)
    return paths
