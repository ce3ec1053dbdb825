"""The optional local classifier hook: a model directory on disk (here a tiny random one, built
offline) adds its verdict to the rules'."""

from __future__ import annotations

from pathlib import Path

import pytest

from guardrails.classifier import LocalClassifier
from guardrails.injection import InjectionDetector, Weights
from guardrails.moderation import Moderator, Thresholds


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny-classifier")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "how", "do", "i", "retry", "files", "ignore", "all"]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    BertTokenizer(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    config = BertConfig(
        vocab_size=len(words),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        id2label={0: "SAFE", 1: "INJECTION"},
        label2id={"SAFE": 0, "INJECTION": 1},
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    return folder


def test_the_models_verdict_is_added_to_the_rules(model_dir: Path) -> None:
    always = LocalClassifier(model_dir, threshold=0.0)
    never = LocalClassifier(model_dir, threshold=1.01)
    assert always.positive == 1 and 0.0 <= always.probability("how do i retry files") <= 1.0
    benign = "How do I retry files?"
    assert not InjectionDetector(Weights.load(), never).check(benign).flagged
    verdict = InjectionDetector(Weights.load(), always).check(benign)
    assert verdict.flagged and verdict.families == ["classifier"]
    assert Moderator(Thresholds.load(), always).check(benign).flagged == ["unsafe"]
    assert Moderator(Thresholds.load(), never).check(benign).flagged == []
