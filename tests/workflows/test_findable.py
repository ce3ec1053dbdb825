"""Every document with text is findable: a one-line file of each type and encoding is ingested
through the workflows as at least one chunk, and a keyword search finds it."""

from __future__ import annotations

import io
from pathlib import Path

import pikepdf
import pytest
import redis
from temporalio.client import Client

from contracts.query import QueryFilters
from index.catalog import Catalog
from keel.config import Settings
from pipelines.deps import Deps
from retrieval.filters import query_where
from retrieval.retriever import HybridRetriever
from tests.helpers import ingest

pytestmark = [pytest.mark.stack, pytest.mark.usefixtures("worker")]


def _docx(line: str) -> bytes:
    import docx

    d = docx.Document()
    d.add_paragraph(line)
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def _pdf(line: str) -> bytes:
    pdf = pikepdf.new()
    font = pdf.make_indirect(
        pikepdf.Dictionary(Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1, BaseFont=pikepdf.Name.Helvetica)
    )
    page = pdf.add_blank_page(page_size=(612, 792))
    page.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font))
    page.Contents = pdf.make_stream(f"BT /F1 12 Tf 72 700 Td ({line}) Tj ET".encode("latin-1"))
    buf = io.BytesIO()
    pdf.save(buf)
    return buf.getvalue()


# (file name, bytes, a word only that file holds). Each is one short line: the partitioner calls
# most of them a Title, which used to open a section and leave no text to chunk.
FILES: list[tuple[str, bytes, str]] = [
    ("plain.txt", b"hello world policy text alphaword", "alphaword"),
    ("latin1.txt", "Café déjà vu: retours acceptés sous 30 jours bravoword.".encode("latin-1"), "bravoword"),
    ("cp1252.txt", "Preise in € – gültig für charlieword".encode("cp1252"), "charlieword"),
    ("utf16.txt", "Ünïcödé sixteen deltaword".encode("utf-16"), "deltaword"),
    ("bom.txt", "\ufeffbyte order mark echoword".encode(), "echoword"),
    ("heading.md", b"# Only a heading foxtrotword", "foxtrotword"),
    ("trailing.md", b"# Guide\n\nSome body text here.\n\n## Appendix golfword\n", "golfword"),
    ("title.html", b"<html><body><h1>Refunds hotelword</h1></body></html>", "hotelword"),
    ("note.xml", b"<note><to>indiaword</to></note>", "indiaword"),
    ("short.eml", b"Subject: hi\nFrom: a@example.org\nContent-Type: text/plain\n\njulietword\n", "julietword"),
    ("line.docx", _docx("kiloword handbook line"), "kiloword"),
    ("line.pdf", _pdf("limaword in a PDF"), "limaword"),
]


async def test_every_file_type_and_encoding_is_findable(
    client: Client, settings: Settings, redis_client: redis.Redis, deps: Deps, tenant: str, tmp_path: Path
) -> None:
    paths = []
    for name, data, _ in FILES:
        (tmp_path / name).write_bytes(data)
        paths.append(tmp_path / name)
    counters, outcomes = await ingest(client, settings, redis_client, paths, tenant)
    assert (counters.ingested, counters.failed) == (len(FILES), 0), {n: o.message for n, o in outcomes.items()}
    for name, _, _ in FILES:
        assert outcomes[name].chunks >= 1, name

    generation = Catalog(redis_client).generation(tenant)
    where = query_where(tenant, generation, [], QueryFilters())
    retriever = HybridRetriever(deps.store, deps.sparse, redis_client)
    index = deps.indexes.open(tenant)
    for name, _, word in FILES:
        found = retriever.retrieve(index, tenant, word, where, "bm25", 5, 5)
        top = found.candidates[found.scored[0].point_id] if found.scored else None
        assert top is not None and word in top.text.lower(), (name, top)
