"""Text normalisation's one home: what a word is for each reader of text."""

from __future__ import annotations

from encoders.sparse import SparseEncoder
from keel.words import BM25_TOKEN, OVERLAP_STOP_WORDS, OVERLAP_TOKEN, STOP_WORDS, fold, words


def test_bm25_splits_as_lucene_does() -> None:
    # One-letter tokens go; underscores and digits stay inside a token.
    assert BM25_TOKEN.findall(fold("A snake_case id v2 and C")) == ["snake_case", "id", "v2", "and"]


def test_bm25_leaves_out_lucenes_stop_words_only() -> None:
    encoder = SparseEncoder()
    assert encoder.terms("the and of") == []
    assert len(encoder.terms("how does it work")) == 3  # "how", "does", "work": not Lucene stop words
    assert "how" not in STOP_WORDS and "how" in OVERLAP_STOP_WORDS


def test_overlap_tokens_are_ascii_letters_and_digits() -> None:
    assert OVERLAP_TOKEN.findall(fold("Don't re-index café_2")) == ["don", "t", "re", "index", "caf", "2"]


def test_words_are_lower_case_and_keep_underscores() -> None:
    assert words("Retry FAILED files, snake_case.") == ["retry", "failed", "files", "snake_case"]


def test_the_stop_sets_are_pinned() -> None:
    # BM25's is Lucene's (parity with the reference); overlap's is the one the extractive answerer
    # was tuned with. A change to either is a change of behaviour, made here on purpose.
    assert len(STOP_WORDS) == 33 and {"the", "they", "with"} <= STOP_WORDS
    assert (
        set(
            [
                "a",
                "an",
                "and",
                "are",
                "as",
                "at",
                "be",
                "by",
                "can",
                "do",
                "does",
                "for",
                "from",
                "has",
                "have",
                "how",
                "i",
                "in",
                "is",
                "it",
                "its",
                "of",
                "on",
                "or",
                "that",
                "the",
                "this",
                "to",
                "was",
                "were",
                "what",
                "when",
                "where",
                "which",
                "who",
                "why",
                "will",
                "with",
                "you",
                "your",
                "not",
                "no",
            ]
        )
        == OVERLAP_STOP_WORDS
    )
