"""Content words for lexical overlap: what the answerer and the citation check compare."""

from __future__ import annotations

from generation.terms import stem, stems, terms


def test_stop_words_and_single_letters_go() -> None:
    assert terms("How do I retry the failed files?") == ["retry", "failed", "files"]


def test_the_light_stemmer_keeps_short_words_whole() -> None:
    assert stem("retrying") == "retry" and stem("files") == "file" and stem("uses") == "uses"
    assert stems("Retrying failed files") == {"retry", "fail", "file"}
