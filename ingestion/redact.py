"""PII redaction with Presidio, before anything is stored.

Detected spans become typed placeholders (`<EMAIL_ADDRESS>`, `<PERSON>`, ...), and the counts per
entity type are returned so they can be recorded on the document. Presidio's default engine would
download `en_core_web_lg`; here it is handed an already-loaded spaCy pipeline instead: the
installed `en_core_web_sm` re-upload when present (names and places via NER), else a blank
English pipeline, with which the pattern recognizers (e-mail, phone, card, IBAN, SSN, IP, ...) still
work.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from keel import offline


@dataclass
class Redaction:
    text: str
    counts: dict[str, int]


def _load_pipeline(use_ner: bool) -> tuple[Any, bool]:
    import spacy

    model_dir = offline.spacy_model_dir() if use_ner else None
    if model_dir is None:
        return spacy.blank("en"), False
    # The dependency parser is the slowest component and Presidio needs none of its output.
    return spacy.load(model_dir, exclude=["parser"]), True


class Redactor:
    """Built once per process (loading spaCy takes ~1 s); thread-safe for concurrent activities."""

    def __init__(self, entities: Sequence[str], score_threshold: float, use_ner: bool = True) -> None:
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import SpacyNlpEngine
        from presidio_anonymizer import AnonymizerEngine

        # Presidio logs a line per recognizer it loads (and skips): noise at every worker start.
        logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
        nlp, self.has_ner = _load_pipeline(use_ner)

        class _PreloadedSpacy(SpacyNlpEngine):
            def load(self) -> None:  # never spacy.cli.download
                self.nlp = {"en": nlp}  # type: ignore[assignment]

        engine = _PreloadedSpacy(models=[{"lang_code": "en", "model_name": "preloaded"}])
        engine.load()
        self._analyzer = AnalyzerEngine(nlp_engine=engine, supported_languages=["en"])
        self._anonymizer = AnonymizerEngine()
        self.entities = [e for e in entities if self.has_ner or e not in _NER_ONLY]
        self.score_threshold = score_threshold
        # spaCy pipelines are not documented as thread-safe; the lock costs little on 2 cores.
        self._lock = threading.Lock()

    def redact(self, text: str) -> Redaction:
        if not text.strip():
            return Redaction(text, {})
        with self._lock:
            results = self._analyzer.analyze(
                text, language="en", entities=self.entities, score_threshold=self.score_threshold
            )
        results = [r for r in results if r.entity_type not in _NER_ONLY or _looks_like_name(text[r.start : r.end])]
        if not results:
            return Redaction(text, {})
        anonymized = self._anonymizer.anonymize(text=text, analyzer_results=results)  # type: ignore[arg-type]
        counts = Counter(item.entity_type for item in anonymized.items)
        return Redaction(anonymized.text, dict(counts))


_NER_ONLY = frozenset({"PERSON", "LOCATION", "NRP", "ORGANIZATION", "DATE_TIME"})


def _looks_like_name(span: str) -> bool:
    """The small NER model tags gene names, units and acronyms (IRF7, RNA, SiO2) as people.

    A name is one to four capitalised alphabetic words (O'Brien and Jean-Luc pass); anything with
    digits, all capitals or inner capitals is not redacted. Names written in lower case are missed:
    the trade is recall on odd spellings for keeping technical text searchable.
    """
    words = span.replace("-", " ").replace("'", " ").split()
    if not 1 <= len(words) <= 4:
        return False
    return all(w.isalpha() and w[0].isupper() and (len(w) == 1 or w[1:].islower()) for w in words)


def merge_counts(counts: Sequence[dict[str, int]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for c in counts:
        total.update(c)
    return dict(sorted(total.items()))
