"""The int8 encoder: built from the packaged weights (never fetched), close to the fp32 model,
versioned apart from it, and built once per cache."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from encoders.int8 import Int8Embedder, build
from encoders.registry import Encoders
from index.active import DEFAULT_ENCODER, INT8_ENCODER, encoder_catalog
from ingestion.chunk import CHUNKER_VERSION
from keel.config import Settings

TEXTS = [
    "Insulin resistance in the liver raises fasting glucose.",
    "short",
    "The eruption of Eyjafjallajökull in 2010 closed European airspace for six days. " * 9,  # over one window
    "Mutations in BRCA1 increase the risk of breast and ovarian cancer; carriers are offered screening.",
]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


def test_int8_vectors_track_the_fp32_model_and_are_versioned_apart(cache: Path) -> None:
    catalog = encoder_catalog(Settings())
    encoders = Encoders(threads=1, batch_size=2, cache_dir=cache)
    fp32, int8 = encoders.get(catalog[DEFAULT_ENCODER]), encoders.get(catalog[INT8_ENCODER])
    a, b = fp32.embed(TEXTS), int8.embed(TEXTS)
    assert b.shape == a.shape
    assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    cosines = (a * b).sum(axis=1)
    assert cosines.min() > 0.97, cosines  # the same model, up to quantization
    # The same ranking of the texts against a question, and the same token counts (one tokenizer).
    q32, q8 = fp32.embed_query("what closed the airspace?"), int8.embed_query("what closed the airspace?")
    assert np.argmax(a @ q32) == np.argmax(b @ q8) == 2
    assert int8.count_tokens(TEXTS) == fp32.count_tokens(TEXTS)
    assert int8.embedding_version(CHUNKER_VERSION).key == "all-MiniLM-L6-v2-int8.d384.norm.w256.c1"
    assert [p.suffix for p in cache.iterdir()] == [".onnx"]  # the build's work files are gone


def test_the_build_is_made_once_and_reused(cache: Path) -> None:
    folder = Path(Settings().embedding_model_path)
    first = build(folder, cache)
    stamp = first.stat().st_mtime_ns
    assert build(folder, cache) == first
    assert first.stat().st_mtime_ns == stamp


def test_a_model_pooled_otherwise_is_refused(tmp_path: Path) -> None:
    model = tmp_path / "cls-model"
    (model / "1_Pooling").mkdir(parents=True)
    (model / "1_Pooling" / "config.json").write_text('{"pooling_mode_cls_token": true}')
    spec = replace(encoder_catalog(Settings())[INT8_ENCODER], path=str(model))
    with pytest.raises(ValueError, match="pools by"):
        Int8Embedder(spec.path, spec.model_id, threads=1, cache_dir=tmp_path)


def test_counting_tokens_while_passages_are_embedded_never_breaks_a_pass(cache: Path) -> None:
    """The context step counts tokens (no truncation, no padding) while ingestion embeds (both):
    one tokenizer object shared by the two once gave a pass ragged rows ("setting an array element
    with a sequence")."""
    from concurrent.futures import ThreadPoolExecutor

    encoder = Encoders(threads=1, batch_size=8, cache_dir=cache).get(encoder_catalog(Settings())[INT8_ENCODER])
    assert encoder.tokenizer is not encoder._counter  # type: ignore[attr-defined]  # the passes keep theirs
    texts = [f"{TEXTS[2]} {i}" for i in range(8)] + TEXTS  # some over one window: they are windowed
    with ThreadPoolExecutor(max_workers=4) as pool:
        counts = [pool.submit(encoder.count_tokens, texts) for _ in range(100)]
        passes = [pool.submit(encoder.embed, texts) for _ in range(8)]
        assert all(len(f.result()) == len(texts) for f in counts)
        assert all(f.result().shape == (len(texts), encoder.dim) for f in passes)
