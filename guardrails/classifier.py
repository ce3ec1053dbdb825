"""An optional local text classifier, by path, for operators who have one (none ships).

A directory holding a Hugging Face sequence-classification model and its tokenizer (e.g. a
fine-tuned DeBERTa prompt-injection detector, or a moderation model), loaded offline from disk
only. `probability(text)` is the model's probability for its positive class: the label whose
name says so (INJECTION, UNSAFE, TOXIC, ...), else the last label. The injection detector and
the moderator add it to their own rules: a text is flagged when the rules or the model say so.
"""

from __future__ import annotations

import threading
from pathlib import Path

POSITIVE = ("inject", "jailbreak", "unsafe", "toxic", "harm", "attack", "malicious", "flag", "positive")


class LocalClassifier:
    def __init__(self, path: str | Path, threshold: float) -> None:
        import torch  # a model is optional: so is loading its stack
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        self.model = AutoModelForSequenceClassification.from_pretrained(str(path), local_files_only=True).eval()
        labels = {int(i): str(name).lower() for i, name in self.model.config.id2label.items()}
        named = [i for i, name in labels.items() if any(word in name for word in POSITIVE)]
        self.positive = named[0] if named else max(labels)
        self.threshold = threshold
        self._lock = threading.Lock()  # one forward pass at a time: the model is shared

    def probability(self, text: str) -> float:
        batch = self.tokenizer(text, truncation=True, max_length=512, return_tensors="pt")
        with self._lock, self.torch.inference_mode():
            logits = self.model(**batch).logits[0]
        return float(self.torch.softmax(logits, dim=-1)[self.positive])

    def flags(self, text: str) -> bool:
        return self.probability(text) >= self.threshold
