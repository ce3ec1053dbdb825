"""The same sentence-transformers model, run as int8 by ONNX Runtime: built here, never downloaded.

The first time a process asks for an `onnx-int8` encoder, the packaged model's transformer is
exported to ONNX with torch's exporter and its weight matrices are quantized to int8, one scale
per output channel (`onnxruntime.quantization.quantize_dynamic`). The build takes a few seconds,
is written atomically under the model cache, and is keyed by a digest of the weights and of this
recipe, so a changed model or recipe builds anew and concurrent builders never see a half file.

Only matrix products with a constant weight are quantized. The attention products (activation by
activation) stay in float: quantizing them too took the mean cosine to the fp32 vectors from 0.994
to 0.934 on SciFact abstracts, and per-tensor scales (one for the whole matrix) did the same. Pooling
and normalisation follow the model's own `1_Pooling` config (mean over tokens for MiniLM); a model
pooled otherwise is refused rather than embedded wrongly.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from encoders.dense import PASS_TOKENS, Embedder

RUNTIME = "onnx-int8"
RECIPE = "onnx17-matmul-weights-qint8-per-channel-1"  # a change here builds every cache entry anew
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_build_lock = threading.Lock()  # one build per process at a time; other processes race safely


def default_cache_dir() -> Path:
    return Path(os.environ.get("KEEL_DATA_DIR", ".keel")) / "models"


class Int8Embedder(Embedder):
    """`Embedder`'s windowing, slots and question batching over an int8 ONNX Runtime session."""

    def __init__(
        self,
        model_path: str,
        model_id: str,
        threads: int,
        batch_size: int = 32,
        window: int | None = None,
        pass_tokens: int = PASS_TOKENS,
        cache_dir: Path | None = None,
    ) -> None:
        self.cache_dir = cache_dir or default_cache_dir()
        super().__init__(model_path, model_id, threads, batch_size, window, pass_tokens)

    def _load(self, model_path: str, threads: int) -> tuple[Any, int]:
        import onnxruntime as ort
        from transformers import AutoTokenizer

        folder = Path(model_path)
        _check_pooling(folder)
        built = build(folder, self.cache_dir)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Spinning threads would burn the core the cheap ingestion steps need between passes.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(built), options, providers=["CPUExecutionProvider"])
        self.onnx_path = built
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        config = _json(folder / "sentence_bert_config.json")
        return tokenizer, int(config.get("max_seq_length") or 256)

    def _use_window(self, window: int) -> None:
        pass  # the tokenizer truncates at `self.window` in `_encode`

    def _encode(self, texts: list[str]) -> np.ndarray:
        """Unit vectors, in the order given; batches are formed by length, as sentence-transformers
        does, so short texts are not padded to a long neighbour's length."""
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        pooled: list[np.ndarray] = []
        for start in range(0, len(order), self.batch_size):
            batch = self.tokenizer(
                [texts[i] for i in order[start : start + self.batch_size]],
                padding=True,
                truncation=True,
                max_length=self.window,
                return_tensors="np",
            )
            feed = {name: np.asarray(batch[name], dtype=np.int64) for name in _INPUTS if name in batch}
            hidden = self.session.run(None, feed)[0]
            mask = feed["attention_mask"][..., None].astype(np.float32)
            pooled.append((hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9))
        vectors = np.vstack(pooled).astype(np.float32)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        out = np.empty_like(vectors)
        out[order] = vectors
        return out


def build(folder: Path, cache_dir: Path) -> Path:
    """The int8 ONNX file of the sentence-transformers model in `folder`, built if missing."""
    target = cache_dir / f"{folder.name}-{_digest(folder)}.int8.onnx"
    if target.is_file():
        return target
    with _build_lock:
        if target.is_file():
            return target
        cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".build-") as work:
            fp32 = Path(work) / "model.onnx"
            _export(folder, fp32)
            part = Path(work) / "model.int8.onnx"
            _quantize(fp32, part)
            os.replace(part, target)  # atomic: a reader sees the whole file or none
    logging.getLogger("keel.encoders").info("built %s from %s", target.name, folder)
    return target


def _export(folder: Path, out: Path) -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)

    class LastHidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    # Two texts of different lengths, so the padding path is traced too.
    sample = tokenizer(["a probe", "a longer probe, to pad the first"], padding=True, return_tensors="pt")
    axes = {name: {0: "batch", 1: "tokens"} for name in (*_INPUTS, "last_hidden_state")}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on shape-dependent Python branches
        torch.onnx.export(
            LastHidden(),
            tuple(sample[name] for name in _INPUTS),
            str(out),
            input_names=list(_INPUTS),
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )


def _quantize(fp32: Path, out: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(fp32)).graph
    weights = {w.name for w in graph.initializer}
    activation_products = [n.name for n in graph.node if n.op_type == "MatMul" and not set(n.input) & weights]
    root = logging.getLogger()
    level, root.level = root.level, logging.ERROR  # its advice to pre-process, at every build
    try:
        quantize_dynamic(
            str(fp32),
            str(out),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
            nodes_to_exclude=activation_products,
        )
    finally:
        root.level = level


def _check_pooling(folder: Path) -> None:
    pooling = _json(folder / "1_Pooling" / "config.json")
    modes = [k for k, v in pooling.items() if k.startswith("pooling_mode_") and v]
    if modes != ["pooling_mode_mean_tokens"]:
        raise ValueError(f"the {RUNTIME} runtime pools by mean over tokens; {folder} pools by {modes or 'nothing'}")


def _digest(folder: Path) -> str:
    h = hashlib.sha256(RECIPE.encode())
    for name in ("config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json"):
        path = folder / name
        if path.is_file():
            h.update(name.encode())
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()[:16]


def _json(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text())) if path.is_file() else {}
