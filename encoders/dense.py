"""Dense embeddings with sentence-transformers, loaded from a local path (never a hub id).

The model's window is 256 word pieces but chunks run to 800 tokens, so a long chunk is embedded as
the length-weighted, re-normalised mean of its 256-token windows rather than silently truncated.
The embedding version names everything that changes a vector: model, dimension, normalisation,
windowing and chunker (the chunker's version comes from whoever pairs the two: the index room).
It is stored on every point and is what a migration keys on.
"""

from __future__ import annotations

import copy
import os
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True, kw_only=True)
class EmbeddingVersion:
    model: str
    dim: int
    normalized: bool
    window: int
    chunker: str

    @property
    def key(self) -> str:
        return f"{self.model}.d{self.dim}.{'norm' if self.normalized else 'raw'}.w{self.window}.{self.chunker}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "key": self.key}


class DenseEncoder(Protocol):
    """What an index needs of its encoder (`encoders.registry` builds one per spec): passages
    and questions to unit vectors, and the token counts that size chunks and contexts."""

    model_id: str
    dim: int
    window: int
    query_slots: threading.BoundedSemaphore  # held while a question is embedded (its own, never a batch's)

    def embedding_version(self, chunker: str) -> EmbeddingVersion: ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...

    def truncate(self, text: str, tokens: int) -> str: ...

    def embed(self, texts: Sequence[str], *, interactive: bool = False) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


# Padded word pieces per forward pass (Settings.embed_pass_tokens): two full windows.
PASS_TOKENS = 512


def forward_passes(lengths: Sequence[int], tokens: int, most: int) -> list[list[int]]:
    """Texts (by index, `lengths` in word pieces) in forward passes, longest first: at most
    `most` texts and `tokens` padded pieces each (its texts times its longest one).

    Every text of a pass is padded to the longest one's length, and on a CPU one pass of a
    full window already keeps the vector units busy, so batching buys little and padding costs
    in full: a window of 40 pieces padded to 256 costs what a full one does. Measured on SciFact
    abstracts in groups of 8 (`make bench-ingest`), one thread: int8 44 -> 30 ms a document,
    fp32 120 -> 91, against one pass for the group. Short texts still share passes."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    out: list[list[int]] = []
    for i in order:
        last = out[-1] if out else None
        # Longest first: the pass's first text is its longest, and sets its padded length.
        if last is not None and len(last) < most and (len(last) + 1) * lengths[last[0]] <= tokens:
            last.append(i)
        else:
            out.append([i])
    return out


class Embedder:
    """A sentence-transformers model by local path. One per process and spec: the model is loaded
    at worker start, never per call. Subclasses run the same model on another runtime
    (`encoders.int8`): they load in `_load` and encode one pass in `_encode`; windowing, slots
    and question batching are shared."""

    def __init__(
        self,
        model_path: str,
        model_id: str,
        threads: int,
        batch_size: int = 32,
        window: int | None = None,
        pass_tokens: int = PASS_TOKENS,
    ) -> None:
        self.batch_size = batch_size
        self.pass_tokens = pass_tokens
        self.tokenizer, native = self._load(model_path, max(1, threads))
        # A fast tokenizer keeps its truncation and padding settings in the object, and each call
        # sets them: a count (neither) on another thread while a pass tokenizes (both) once gave
        # the pass ragged rows. Counting, windowing and cutting use a copy of their own, one call
        # at a time; the passes keep the original, always called with the same settings.
        self._counter = copy.deepcopy(self.tokenizer)
        self._counting = threading.Lock()
        if window is not None and not 8 <= window <= native:
            raise ValueError(f"window {window} is outside 8..{native}, the model's maximum")
        self.window = window or native  # part of the embedding version: another window is another index
        self._use_window(self.window)
        self.model_id = model_id
        self.dim = int(self._encode(["dimension probe"]).shape[1])
        # Forward passes release the GIL, so they can run side by side: as many as there are
        # cores for the threads each one uses. More than that oversubscribes and thrashes.
        # Questions have slots of their own: a query's one short pass (a few ms) never waits
        # behind a batch of passages (seconds), which yields the CPU anyway (its threads are niced).
        cores = os.cpu_count() or 1
        self._slots = threading.BoundedSemaphore(max(1, cores // max(1, threads)))
        query_passes = max(1, cores // max(1, threads))
        self.query_slots = threading.BoundedSemaphore(query_passes)
        self._questions = QuestionBatcher(self._encode, self.query_slots, query_passes)

    def _load(self, model_path: str, threads: int) -> tuple[Any, int]:
        """Load the model; return its tokenizer and its native window in word pieces."""
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads)
        self.model = SentenceTransformer(model_path, device="cpu", local_files_only=True)
        return self.model.tokenizer, int(self.model.max_seq_length or 256)

    def _use_window(self, window: int) -> None:
        self.model.max_seq_length = window

    def embedding_version(self, chunker: str) -> EmbeddingVersion:
        """What a vector of this encoder over chunks of that chunker is (normalised unit vectors)."""
        return EmbeddingVersion(model=self.model_id, dim=self.dim, normalized=True, window=self.window, chunker=chunker)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        with self._counting:
            ids = self._counter(list(texts), add_special_tokens=False, truncation=False)["input_ids"]
        return [len(x) for x in ids]

    def truncate(self, text: str, tokens: int) -> str:
        """The text cut to its first `tokens` tokens (as count_tokens counts them)."""
        with self._counting:
            ids = self._counter(text, add_special_tokens=False, truncation=False)["input_ids"]
            return text if len(ids) <= tokens else str(self._counter.decode(ids[:tokens]))

    def _windows(self, text: str) -> list[tuple[str, int]]:
        with self._counting:
            ids = self._counter(text, add_special_tokens=False, truncation=False)["input_ids"]
            size = self.window - 2  # [CLS] and [SEP]
            if len(ids) <= size:
                return [(text, max(1, len(ids)))]
            out = []
            for start in range(0, len(ids), size):
                piece = ids[start : start + size]
                out.append((self._counter.decode(piece), len(piece)))
            return out

    def embed(self, texts: Sequence[str], *, interactive: bool = False) -> np.ndarray:
        """Passages -> unit vectors, shape (len(texts), dim). `interactive` (a question) takes
        a query slot rather than one of the batch slots."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        windows = [self._windows(t) for t in texts]
        flat = [w for ws in windows for w, _ in ws]
        if interactive:
            vecs = self._questions.encode(flat)
        else:
            lengths = [n + 2 for ws in windows for _, n in ws]  # with [CLS] and [SEP]
            vecs = np.empty((len(flat), self.dim), dtype=np.float32)
            acquire_polled(self._slots)
            try:
                for batch in forward_passes(lengths, self.pass_tokens, self.batch_size):
                    vecs[batch] = self._encode([flat[i] for i in batch])
            finally:
                self._slots.release()
        out = np.empty((len(texts), vecs.shape[1]), dtype=np.float32)
        i = 0
        for row, ws in enumerate(windows):
            weights = np.array([n for _, n in ws], dtype=np.float32)
            v = (vecs[i : i + len(ws)] * weights[:, None]).sum(axis=0)
            out[row] = v / max(float(np.linalg.norm(v)), 1e-12)
            i += len(ws)
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text], interactive=True)[0]

    def _encode(self, texts: list[str]) -> np.ndarray:
        return np.asarray(
            self.model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,  # its bar would fill the worker's log at INFO
            )
        )


class QuestionBatcher:
    """Questions that arrive while a pass runs share the next one.

    A question's pass is short and mostly fixed cost (tokenizer, Python, small matrices): eight
    questions in one pass cost about 3x one, not 8x (5 ms a question instead of 13 on this box).
    Nothing waits to fill a batch: a lone question runs at once; under load the queue fills while
    the passes run, so throughput grows with load instead of the queue. `passes` threads each
    hold one of `slots` while they encode (the slots are what a test holds to stall the path).
    """

    def __init__(
        self, encode: Callable[[list[str]], np.ndarray], slots: threading.BoundedSemaphore, passes: int, most: int = 32
    ) -> None:
        self._encode = encode
        self._slots = slots
        self._most = most  # texts in one pass
        self._queue: queue.SimpleQueue[tuple[list[str], Future[np.ndarray]]] = queue.SimpleQueue()
        for i in range(passes):
            threading.Thread(target=self._run, name=f"keel-question-pass-{i}", daemon=True).start()

    def encode(self, texts: list[str]) -> np.ndarray:
        done: Future[np.ndarray] = Future()
        self._queue.put((texts, done))
        try:
            while True:  # polled, never blocked in C for long: a cancelled step stops waiting
                try:
                    return done.result(timeout=0.05)
                except TimeoutError:
                    continue
        except BaseException:
            done.cancel()  # still queued: no pass is spent on it
            raise

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            size = len(batch[0][0])
            while size < self._most:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                batch.append(item)
                size += len(item[0])
            self._slots.acquire()
            try:
                live = [(texts, done) for texts, done in batch if done.set_running_or_notify_cancel()]
                if not live:
                    continue
                try:
                    vecs = self._encode([t for texts, _ in live for t in texts])
                except Exception as exc:  # every caller of this pass gets the error, the thread goes on
                    for _, done in live:
                        done.set_exception(exc)
                    continue
                at = 0
                for texts, done in live:
                    done.set_result(vecs[at : at + len(texts)])
                    at += len(texts)
            finally:
                self._slots.release()


def embedding_text(title: str, section_path: Sequence[str], text: str) -> str:
    """What the model sees: the section path as a header, so a chunk carries its context."""
    header = " > ".join(s for s in section_path if s) or title
    return f"{header}\n{text}" if header and not text.startswith(header) else text


def acquire_polled(slots: threading.BoundedSemaphore) -> None:
    """Take a slot in short waits, never blocked in C for long: a cancelled step stops waiting."""
    while not slots.acquire(timeout=0.05):
        pass
