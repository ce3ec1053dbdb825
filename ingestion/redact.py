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

from ingestion.chunk import Chunk
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
        results, seen = [], set()
        for start, window in windows(text, WINDOW_CHARS, WINDOW_OVERLAP_CHARS):
            with self._lock:
                found = self._analyzer.analyze(
                    window, language="en", entities=self.entities, score_threshold=self.score_threshold
                )
            for r in found:
                r.start, r.end = r.start + start, r.end + start
                if (r.start, r.end, r.entity_type) not in seen:  # found again in an overlap
                    seen.add((r.start, r.end, r.entity_type))
                    results.append(r)
        results = [r for r in results if r.entity_type not in _NER_ONLY or _looks_like_name(text[r.start : r.end])]
        if not results:
            return Redaction(text, {})
        anonymized = self._anonymizer.anonymize(text=text, analyzer_results=results)  # type: ignore[arg-type]
        counts = Counter(item.entity_type for item in anonymized.items)
        return Redaction(anonymized.text, dict(counts))


# A long text is analysed in windows: spaCy's cost and memory grow with the text it is given (and
# it refuses a million characters), so a huge single-line file would stall on one call. Windows
# overlap by more than any entity's length, so one cut at a boundary is whole in the next window;
# the anonymizer merges the spans found twice.
WINDOW_CHARS = 20_000
WINDOW_OVERLAP_CHARS = 500


def windows(text: str, size: int, overlap: int) -> list[tuple[int, str]]:
    """(offset, piece) windows of at most `size` characters covering `text`, each starting
    `overlap` characters before the previous one ended (at whitespace where there is some)."""
    if len(text) <= size:
        return [(0, text)]
    out, start = [], 0
    while True:
        end = min(len(text), start + size)
        if end < len(text):
            cut = text.rfind(" ", start + size // 2, end)  # end at a space, so no word is split
            end = cut if cut > 0 else end
        out.append((start, text[start:end]))
        if end >= len(text):
            return out
        start = max(end - overlap, start + 1)


def redact_chunks(redactor: Redactor, title: str, chunks: list[Chunk]) -> tuple[str, list[Chunk], dict[str, int]]:
    """Chunk text, section titles and the document title: names hide in headings too."""
    red_title = redactor.redact(title)
    counts = [red_title.counts]
    headings: dict[str, str] = {}  # each heading is redacted (and counted) once, not per chunk
    for c in chunks:
        body = redactor.redact(c.text)
        counts.append(body.counts)
        for heading in c.section_path:
            if heading not in headings:
                red = redactor.redact(heading)
                headings[heading] = red.text
                counts.append(red.counts)
        c.text, c.section_path = body.text, [headings[h] for h in c.section_path]
    return red_title.text, chunks, merge_counts(counts)


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
