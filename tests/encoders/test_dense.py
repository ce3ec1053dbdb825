from __future__ import annotations

import numpy as np

from encoders.dense import Embedder, embedding_text
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


def test_embedding_text_carries_the_section_path() -> None:
    assert embedding_text("Doc", ["Guide", "Install"], "pip install keel") == "Guide > Install\npip install keel"
    assert embedding_text("Doc", [], "body") == "Doc\nbody"
