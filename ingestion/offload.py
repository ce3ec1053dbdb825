"""Parsing and redaction in worker processes of their own, each call under a time limit.

Both are CPU-bound pure Python (unstructured's partitioners, spaCy and Presidio). Run in the
worker's own process they hold the GIL that embedding and the query path need, and one
pathological file (2 MB on a single line) can run for minutes while the rest of its batch waits.
Here they run in a small pool of child processes at the ingestion niceness. A call that runs past
its limit has its process killed and replaced, and the file fails with `file_too_slow` (never
retried: it would take as long again) while the other files go on in the other processes. A
process that dies mid-call (a crash in a native parser) fails the call with the retryable
`parser_crashed`, and is replaced. Each child's address space is capped at what it holds once
loaded plus `memory_limit_bytes`: a file that inflates past it (a decompression bomb, a PDF stream
of gigabytes) fails with `file_too_large`, never retried, and the child is replaced, while the
worker, the server and Redis never see the memory it wanted.

Children are started with `spawn` (never `fork`: the parent holds torch's and gRPC's threads),
load spaCy once, and exit when their parent does (their pipe closes).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import queue
import resource
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from guardrails.pii import Redactor
from guardrails.pseudonyms import Pseudonyms
from ingestion.chunk import Chunk
from ingestion.parse import ParsedDocument, parse_document
from ingestion.redact import Redacted, redact_chunks
from keel.errors import FileTooLarge, FileTooSlow, KeelError, ParserCrashed, from_code

log = logging.getLogger("keel.offload")

START_LIMIT_S = 120.0  # a child's imports and spaCy load; slow on a busy 2-core box


@dataclass(frozen=True, kw_only=True)
class OffloadConfig:
    processes: int
    nice: int
    max_file_bytes: int
    decode_legacy_text: bool
    pii_entities: Sequence[str]
    pii_score_threshold: float
    pii_use_ner: bool
    parse_limit_s: float
    redact_limit_s: float
    memory_limit_bytes: int = 0  # on top of a loaded child's address space (0: no cap)
    max_inflated_bytes: int = 0  # what a compressed file may inflate to (0: no cap)


class Offload:
    """A pool of `processes` children; each call takes an idle one (waiting for it does not count
    against the call's limit) and gives it back, or a fresh one in its place."""

    def __init__(self, config: OffloadConfig) -> None:
        self.config = config
        self._ctx = multiprocessing.get_context("spawn")
        self._idle: queue.Queue[_Child] = queue.Queue()
        self._started = False
        self._lock = threading.Lock()
        self._children: list[_Child] = []

    def start(self) -> None:
        """Start the children now (they load in the background), not on the first document."""
        with self._lock:
            if self._started:
                return
            self._started = True
            for _ in range(max(1, self.config.processes)):
                self._add(_Child(self._ctx, self.config))

    def wait_ready(self, timeout_s: float = START_LIMIT_S) -> None:
        """Block until every child has loaded (its imports, spaCy, the partitioners' warm-up)."""
        self.start()
        with self._lock:
            children = list(self._children)
        for child in children:
            child.wait_ready(timeout_s)

    def parse(self, data: bytes, filename: str) -> ParsedDocument:
        parsed: ParsedDocument = self._call("parse", (data, filename), self.config.parse_limit_s)
        return parsed

    def redact(self, title: str, chunks: list[Chunk], pseudonyms: Pseudonyms | None = None) -> Redacted:
        out: Redacted = self._call("redact", (title, chunks, pseudonyms), self.config.redact_limit_s)
        return out

    def pids(self) -> list[int]:
        with self._lock:
            return [c.pid for c in self._children]

    def close(self) -> None:
        with self._lock:
            children, self._children = self._children, []
        for child in children:
            child.stop()

    def _add(self, child: _Child) -> None:
        self._children.append(child)
        self._idle.put(child)

    def _replace(self, child: _Child) -> None:
        child.kill()
        with self._lock:
            if child in self._children:
                self._children.remove(child)
                self._add(_Child(self._ctx, self.config))

    def _call(self, op: str, args: tuple[Any, ...], limit_s: float) -> Any:
        self.start()
        child = self._idle.get()
        try:
            status, value = child.call(op, args, limit_s)
        except _TimedOut:
            self._replace(child)
            raise FileTooSlow(
                f"{op} ran past its {limit_s:g} s limit for one file and was stopped "
                f"(KEEL_{op.upper()}_LIMIT_S); split the file, or raise the limit"
            ) from None
        except (EOFError, OSError) as exc:
            self._replace(child)
            raise ParserCrashed(f"the {op} process died while working on the file ({exc!r})") from exc
        else:
            if status == "spent":  # the child ran out of its memory: it may not be sound any more
                self._replace(child)
            else:
                self._idle.put(child)
        if status == "ok":
            return value
        if status in ("keel", "spent"):
            code, message = value
            raise from_code(code, message)
        raise RuntimeError(f"{op} failed in its worker process: {value}")


class _TimedOut(Exception):
    pass


class _Child:
    def __init__(self, ctx: Any, config: OffloadConfig) -> None:
        parent, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child, config), name="keel-offload", daemon=True)
        self.process.start()
        child.close()
        self.conn: Connection = parent
        self.ready = False
        self._ready_lock = threading.Lock()  # the start handshake: a call's, or wait_ready's

    @property
    def pid(self) -> int:
        return int(self.process.pid or 0)

    def wait_ready(self, timeout_s: float = START_LIMIT_S) -> None:
        """The child's "ready", read once: the first message it sends, before any reply."""
        with self._ready_lock:
            if self.ready:
                return
            if not self.conn.poll(timeout_s):
                raise OSError(f"the worker process did not start within {timeout_s:.0f} s")
            self.conn.recv()
            self.ready = True

    def call(self, op: str, args: tuple[Any, ...], limit_s: float) -> tuple[str, Any]:
        self.wait_ready()  # the first call waits for the child's start, outside the call's limit
        self.conn.send((op, args))
        if not self.conn.poll(limit_s):
            raise _TimedOut
        reply: tuple[str, Any] = self.conn.recv()
        return reply

    def kill(self) -> None:
        self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()

    def stop(self) -> None:
        with contextlib.suppress(OSError):  # already gone
            self.conn.send(None)  # asks it to exit
        self.process.join(timeout=2)
        if self.process.is_alive():
            self.kill()
        self.conn.close()


def _serve(conn: Connection, config: OffloadConfig) -> None:
    """The child: load once, then answer calls until told to stop or the parent goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if config.nice > 0:
        os.nice(config.nice)
    started = time.monotonic()
    redactor = Redactor(config.pii_entities, config.pii_score_threshold, config.pii_use_ner)
    # The partitioners import lazily; paying that here keeps it out of the first file's limit.
    sample = "Warm-up\n\nThis paragraph warms up the partitioners. Write to a.b@example.org today.\n"
    redact_chunks(redactor, "Warm-up", [])
    redactor.redact(sample)
    for name in ("warm-up.txt", "warm-up.md", "warm-up.html"):
        parse_document(sample.encode(), name, config.max_file_bytes, config.decode_legacy_text)
    if config.memory_limit_bytes > 0:
        # Native libraries mapped after the cap may fail to load (OpenCV's bootstrap segfaults):
        # every partitioner is imported first.
        import unstructured.partition.docx
        import unstructured.partition.pdf  # noqa: F401

        _cap_memory(config.memory_limit_bytes)
    log.debug("offload process ready in %.1f s", time.monotonic() - started)
    conn.send("ready")
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if request is None:
            return
        op, args = request
        try:
            if op == "parse":
                data, filename = args
                value: Any = parse_document(
                    data, filename, config.max_file_bytes, config.decode_legacy_text, config.max_inflated_bytes
                )
            else:
                title, chunks, pseudonyms = args
                value = redact_chunks(redactor, title, chunks, pseudonyms)
            reply: tuple[str, Any] = ("ok", value)
        except KeelError as exc:
            reply = ("keel", (exc.code, exc.message))
        except MemoryError:
            limit = config.memory_limit_bytes // (1024 * 1024)
            message = (
                f"the file needed more than the {limit} MB of memory one file may use to {op} (KEEL_PARSE_MEMORY_MB)"
            )
            reply = ("spent", (FileTooLarge.code, message))
        except Exception as exc:  # a bug or a hostile file: reported, and the child serves on
            reply = ("error", f"{type(exc).__name__}: {exc}")
        conn.send(reply)


def _cap_memory(extra_bytes: int) -> None:
    """Cap this process's address space at what it maps now plus `extra_bytes`: an allocation past
    it raises MemoryError here instead of taking the box's memory."""
    with open("/proc/self/statm") as f:
        mapped = int(f.read().split()[0]) * resource.getpagesize()
    limit = mapped + extra_bytes
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
