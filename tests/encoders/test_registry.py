from __future__ import annotations

import threading

import numpy as np
import pytest

from encoders.registry import Encoders, EncoderSpec
from ingestion.chunk import CHUNKER_VERSION
from keel.config import Settings


def _spec(window: int | None = None) -> EncoderSpec:
    s = Settings()
    return EncoderSpec(model_id=s.embedding_model_id, path=s.embedding_model_path, window=window)


def test_a_spec_is_loaded_once_and_shared_by_every_caller() -> None:
    encoders = Encoders(threads=1, batch_size=8)
    got: list[object] = []
    callers = [threading.Thread(target=lambda: got.append(encoders.get(_spec()))) for _ in range(4)]
    for t in callers:
        t.start()
    for t in callers:
        t.join()
    assert len({id(e) for e in got}) == 1
    assert encoders.loaded() == [_spec()]


def test_another_window_is_another_encoder_and_another_version() -> None:
    encoders = Encoders(threads=1, batch_size=8)
    native, narrow = encoders.get(_spec()), encoders.get(_spec(window=64))
    assert native is not narrow
    assert native.embedding_version(CHUNKER_VERSION).key == "all-MiniLM-L6-v2.d384.norm.w256.c1"
    assert narrow.embedding_version(CHUNKER_VERSION).key == "all-MiniLM-L6-v2.d384.norm.w64.c1"
    text = "insulin and glucose metabolism in the liver. " * 12 + "volcanic eruptions in iceland. " * 12
    a, b = native.embed([text])[0], narrow.embed([text])[0]
    assert np.isclose(np.linalg.norm(b), 1.0, atol=1e-5)
    assert not np.allclose(a, b, atol=1e-3)  # the narrow one pools more, shorter windows


def test_unknown_runtimes_and_impossible_windows_are_refused() -> None:
    encoders = Encoders(threads=1, batch_size=8)
    with pytest.raises(ValueError, match="runtime"):
        encoders.get(EncoderSpec(model_id="x", path=_spec().path, runtime="onnx-magic"))
    with pytest.raises(ValueError, match="window"):
        encoders.get(_spec(window=4096))
