"""Parsing and redaction in processes of their own: same results, bounded time, crashes contained."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from ingestion.chunk import Chunk
from ingestion.offload import Offload, OffloadConfig
from keel.config import Settings
from keel.errors import FileTooLarge, FileTooSlow, NoContent, ParserCrashed
from tests.helpers import docx_bomb, pdf_bomb


def _config(parse_limit_s: float = 60.0, memory_limit_bytes: int = 0) -> OffloadConfig:
    s = Settings()
    return OffloadConfig(
        processes=1,
        nice=0,
        max_file_bytes=s.max_file_bytes,
        decode_legacy_text=s.decode_legacy_text,
        pii_entities=tuple(s.pii_entities),
        pii_score_threshold=s.pii_score_threshold,
        pii_use_ner=s.pii_use_ner,
        parse_limit_s=parse_limit_s,
        redact_limit_s=60.0,
        memory_limit_bytes=memory_limit_bytes,
        max_inflated_bytes=s.max_inflated_bytes,
    )


@pytest.fixture(scope="module")
def pool() -> Iterator[Offload]:
    p = Offload(_config())
    yield p
    p.close()


def test_parse_and_redact_run_in_a_child_process(pool: Offload) -> None:
    parsed = pool.parse(b"# Contacts\n\nWrite to maria.gonzalez@example.com about the trial.\n", "notes.md")
    assert [e.kind for e in parsed.elements][:1] == ["Title"] and parsed.title == "Contacts"
    chunk = Chunk(index=0, text=parsed.elements[-1].text, section_path=["Contacts"], token_count=10)
    done = pool.redact("Contacts", [chunk])
    assert "maria.gonzalez@example.com" not in done.chunks[0].text and "<EMAIL_ADDRESS>" in done.chunks[0].text
    assert done.counts == {"EMAIL_ADDRESS": 1} and done.title == "Contacts" and done.tokens == {}
    assert pool.pids() and os.getpid() not in pool.pids()


def test_bad_input_keeps_its_code_across_the_process_boundary(pool: Offload) -> None:
    with pytest.raises(NoContent):
        pool.parse(b"   \n\n  ", "blank.txt")
    assert pool.parse(b"Still serving.", "after.txt").elements  # the child serves on


def test_a_file_past_its_limit_is_stopped_and_the_pool_serves_on() -> None:
    pool = Offload(_config(parse_limit_s=1.5))
    try:
        pool.parse(b"warm", "warm.txt")  # the child is up; its start does not count
        before = pool.pids()
        one_line = (b"word " * 400_000).strip()  # 2 MB on a single line: many seconds to partition
        started = time.monotonic()
        with pytest.raises(FileTooSlow) as err:
            pool.parse(one_line, "one-line.txt")
        assert time.monotonic() - started < 6 and err.value.code == "file_too_slow"
        assert pool.pids() != before  # killed and replaced
        assert pool.parse(b"A short file after the slow one.", "next.txt").elements
    finally:
        pool.close()


def test_a_child_that_dies_mid_call_fails_that_call_retryably_and_is_replaced() -> None:
    pool = Offload(_config())
    try:
        pool.parse(b"warm", "warm.txt")
        (pid,) = pool.pids()
        threading.Timer(0.5, os.kill, args=(pid, signal.SIGKILL)).start()
        with pytest.raises(ParserCrashed) as err:
            pool.parse((b"word " * 400_000).strip(), "one-line.txt")
        assert err.value.retryable
        assert pool.pids() != [pid] and pool.parse(b"Served by the new process.", "next.txt").elements
    finally:
        pool.close()


def test_waiting_for_the_children_to_load_leaves_them_ready_to_serve() -> None:
    pool = Offload(_config())
    try:
        pool.wait_ready()
        assert all(child.ready for child in pool._children)  # each one's start read, once
        pool.wait_ready()  # again: nothing left to read, returns at once
        assert [e.text for e in pool.parse(b"# Title\n\nBody text.\n", "a.md").elements] == ["Title", "Body text."]
    finally:
        pool.close()


def test_decompression_bombs_are_refused_and_the_pool_serves_on() -> None:
    pool = Offload(_config(memory_limit_bytes=256 * 1024 * 1024))
    try:
        pool.parse(b"warm", "warm.txt")
        before = pool.pids()
        # A DOCX whose parts inflate past the cap is refused from its zip directory, unread.
        with pytest.raises(FileTooLarge, match="inflates") as err:
            pool.parse(docx_bomb(400 * 1024 * 1024), "bomb.docx")
        assert not err.value.retryable
        # A PDF stream that inflates to 600 MB stops at the PDF reader's decode limit.
        with pytest.raises(NoContent):
            pool.parse(pdf_bomb(600 * 1024 * 1024), "bomb.pdf")
        assert pool.pids() == before  # neither cost the child anything
    finally:
        pool.close()


def test_a_file_past_the_memory_cap_is_too_large_and_its_process_is_replaced() -> None:
    # A cap far below what an 8 MB text needs to partition stands in for a bomb no check knew.
    pool = Offload(_config(memory_limit_bytes=48 * 1024 * 1024))
    try:
        pool.parse(b"warm", "warm.txt")
        before = pool.pids()
        big = b"\n\n".join(b"Paragraph %d says something about the latency budget." % i for i in range(150_000))
        with pytest.raises(FileTooLarge, match="memory") as err:
            pool.parse(big, "big.txt")
        assert not err.value.retryable  # the same file would need the same memory again
        assert pool.pids() != before  # a child that ran out of memory is replaced
        assert pool.parse(b"A short file after the large one.", "next.txt").elements
    finally:
        pool.close()
