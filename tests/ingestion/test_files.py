from __future__ import annotations

import pytest

from ingestion.files import check_name, classify, decode_text
from keel.errors import EmptyFile, FileTooLarge, NotText, UnsafeName, UnsupportedType


@pytest.mark.parametrize("name", ["report.pdf", "notes v2.md", "Résumé.docx", "a"])
def test_plain_names_pass(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/passwd",
        "/etc/passwd",
        "a/b.txt",
        "..\\..\\win.ini",
        "C:\\x.txt",
        "..",
        ".env",
        "x\x00.txt",
        "a\nb.md",
        "",
        " x.md",
    ],
)
def test_path_tricks_are_refused(name: str) -> None:
    with pytest.raises(UnsafeName):
        check_name(name)


def test_classify_limits_and_types() -> None:
    assert classify("a.PDF", 10, 100).kind == "pdf"
    assert classify("a.markdown", 10, 100).kind == "md"
    with pytest.raises(EmptyFile):
        classify("a.txt", 0, 100)
    with pytest.raises(FileTooLarge, match="limit is 100"):
        classify("a.txt", 101, 100)
    with pytest.raises(UnsupportedType, match=r"\.png"):
        classify("a.png", 10, 100)
    with pytest.raises(UnsupportedType, match="no extension"):
        classify("Makefile", 10, 100)


def test_decode_text_encodings() -> None:
    assert decode_text("naïve café".encode(), allow_legacy=False) == ("naïve café", "utf-8")
    assert decode_text("\ufeffbom".encode(), allow_legacy=False)[0] == "bom"
    assert decode_text("hé".encode("utf-16"), allow_legacy=False) == ("hé", "utf-16")
    latin = "Crème brûlée is a French dessert with caramelised sugar on a custard base.".encode("cp1252")
    text, enc = decode_text(latin, allow_legacy=True)
    assert text.startswith("Crème brûlée") and enc.replace("_", "").lower() in {
        "cp1252",
        "latin1",
        "iso88591",
        "windows1252",
    }
    with pytest.raises(NotText, match="not UTF-8"):
        decode_text(latin, allow_legacy=False)


def test_binary_junk_is_not_text() -> None:
    with pytest.raises(NotText, match="binary"):
        decode_text(bytes(range(256)) * 4, allow_legacy=True)
    with pytest.raises(NotText):
        decode_text(b"\x00" * 100, allow_legacy=True)
