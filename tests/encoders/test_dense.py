from __future__ import annotations

import ctypes
import threading
import time

import numpy as np

from encoders.dense import Embedder, QuestionBatcher, embedding_text, forward_passes
from ingestion.chunk import CHUNKER_VERSION
from keel.config import Settings


def test_embeddings_are_unit_vectors_and_versioned() -> None:
    s = Settings()
    e = Embedder(s.embedding_model_path, s.embedding_model_id, threads=1)
    assert e.embedding_version(CHUNKER_VERSION).key == "all-MiniLM-L6-v2.d384.norm.w256.c1"
    short = e.embed(["insulin regulates blood glucose", "glucose in the blood is controlled by insulin", "tax law"])
    assert short.shape == (3, 384)
    assert np.allclose(np.linalg.norm(short, axis=1), 1.0, atol=1e-5)
    assert short[0] @ short[1] > short[0] @ short[2] + 0.3  # meaning, not noise

    # A chunk past the model's 256-token window is embedded from all of it, not just the head.
    head = "insulin and glucose metabolism in the liver. " * 30
    tail = "volcanic eruptions and plate tectonics in iceland. " * 30
    whole, only_head = e.embed([head + tail, head])
    topic = e.embed(["volcanoes and plate tectonics"])[0]
    assert whole @ topic > only_head @ topic + 0.1


def test_forward_passes_keep_long_and_short_windows_apart() -> None:
    lengths = [256, 40, 256, 30, 200, 12, 12, 12]
    passes = forward_passes(lengths, tokens=512, most=4)
    assert sorted(i for p in passes for i in p) == list(range(len(lengths)))  # each text once
    for p in passes:
        assert (len(p) <= 4 and len(p) * max(lengths[i] for i in p) <= 512) or len(p) == 1
    assert [0, 2] in passes  # two full windows fill a pass; a 40-piece one is not padded to 256
    assert all(1 not in p for p in passes if 0 in p or 2 in p)
    assert forward_passes([600], tokens=512, most=4) == [[0]]  # one longer than the budget goes alone


def test_vectors_do_not_depend_on_which_texts_share_a_pass() -> None:
    s = Settings()
    e = Embedder(s.embedding_model_path, s.embedding_model_id, threads=1)
    texts = ["insulin regulates blood glucose. " * 40, "tax law", "volcanoes in iceland and their eruptions. " * 5]
    together = e.embed(texts)
    alone = np.vstack([e.embed([t]) for t in texts])
    one_pass = Embedder(s.embedding_model_path, s.embedding_model_id, threads=1, pass_tokens=10**6).embed(texts)
    assert np.allclose(together, alone, atol=1e-5)
    assert np.allclose(together, one_pass, atol=1e-5)


def test_embedding_text_carries_the_section_path() -> None:
    assert embedding_text("Doc", ["Guide", "Install"], "pip install keel") == "Guide > Install\npip install keel"
    assert embedding_text("Doc", [], "body") == "Doc\nbody"


def test_questions_asked_together_share_passes_and_get_their_own_vectors() -> None:

    s = Settings()
    e = Embedder(s.embedding_model_path, s.embedding_model_id, threads=1)
    questions = [f"how long does a refund for order {n} take?" for n in range(12)]
    alone = {q: e.embed([q])[0] for q in questions}  # batch path, one at a time

    passes: list[int] = []

    def encode(texts: list[str]) -> np.ndarray:
        passes.append(len(texts))
        return e.embed(texts)

    slots = threading.BoundedSemaphore(1)
    batcher = QuestionBatcher(encode, slots, passes=1)
    slots.acquire()  # the one pass is busy: every question below queues behind it
    got: dict[str, np.ndarray] = {}
    threads = [threading.Thread(target=lambda q=q: got.__setitem__(q, batcher.encode([q])[0])) for q in questions]
    for t in threads:
        t.start()
    time.sleep(0.5)  # all of them asked while the pass was busy
    slots.release()
    for t in threads:
        t.join(timeout=30)
    assert set(got) == set(questions)
    for q in questions:  # each caller gets its own question's vector, not a neighbour's
        assert float(got[q] @ alone[q]) > 0.9999
    assert sum(passes) == len(questions) and len(passes) < len(questions)


def test_a_question_whose_caller_gave_up_is_not_encoded() -> None:

    encoded: list[str] = []

    def encode(texts: list[str]) -> np.ndarray:
        encoded.extend(texts)
        return np.zeros((len(texts), 4), dtype=np.float32)

    slots = threading.BoundedSemaphore(1)
    batcher = QuestionBatcher(encode, slots, passes=1)
    slots.acquire()
    gave_up = threading.Event()

    def ask() -> None:
        try:
            batcher.encode(["stalled question"])
        except KeyboardInterrupt:  # stands in for the SDK's cancellation, raised inside the wait
            gave_up.set()

    t = threading.Thread(target=ask)
    t.start()
    time.sleep(0.2)
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(t.ident or 0), ctypes.py_object(KeyboardInterrupt))
    t.join(timeout=5)
    assert gave_up.is_set()
    slots.release()
    assert batcher.encode(["next question"]).shape == (1, 4)
    assert encoded == ["next question"]
