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
import re
import string
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
        self._analyzer.registry.remove_recognizer("EmailRecognizer")
        self._analyzer.registry.add_recognizer(_any_domain_email())
        self._anonymizer = AnonymizerEngine()
        self.entities = [e for e in entities if self.has_ner or e not in _NER_ONLY]
        self.names = "PERSON" in entities  # addressed names are found by pattern, with or without NER
        self.score_threshold = score_threshold
        # spaCy pipelines are not documented as thread-safe; the lock costs little on 2 cores.
        self._lock = threading.Lock()

    def redact(self, text: str) -> Redaction:
        spans = self.find(text)
        if not spans:
            return Redaction(text, {})
        from presidio_analyzer import RecognizerResult

        results = [RecognizerResult(s.entity, s.start, s.end, s.score) for s in spans]
        anonymized = self._anonymizer.anonymize(text=text, analyzer_results=results)  # type: ignore[arg-type]
        counts = Counter(item.entity_type for item in anonymized.items)
        return Redaction(anonymized.text, dict(counts))

    def find(self, text: str) -> list[Span]:
        """The PII spans of `text`, non-overlapping, in order (what `redact` replaces)."""
        if not text.strip():
            return []
        found: dict[tuple[int, int, str], float] = {}
        for start, window in windows(text, WINDOW_CHARS, WINDOW_OVERLAP_CHARS):
            with self._lock:
                results = self._analyzer.analyze(
                    window, language="en", entities=self.entities, score_threshold=self.score_threshold
                )
            for r in results:  # found again in an overlap: the same key
                key = (r.start + start, r.end + start, r.entity_type)
                found[key] = max(found.get(key, 0.0), r.score)
        spans = [Span(start=a, end=b, entity=e, score=sc) for (a, b, e), sc in found.items()]
        lower = _lower_case_words(text)  # once per text, not per detection
        spans = [s for s in spans if _plausible(text, s, lower)]
        if self.names:
            spans += _addressed_names(text)
        return _resolve(spans)


@dataclass(frozen=True, kw_only=True)
class Span:
    start: int
    end: int
    entity: str
    score: float


def _resolve(spans: Sequence[Span]) -> list[Span]:
    """Overlapping detections -> one each: the higher score wins, then the longer span."""
    kept: list[Span] = []
    for s in sorted(spans, key=lambda s: (-s.score, -(s.end - s.start), s.start)):
        if all(s.end <= k.start or s.start >= k.end for k in kept):
            kept.append(s)
    return sorted(kept, key=lambda s: s.start)


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


def _any_domain_email() -> Any:
    from presidio_analyzer.predefined_recognizers import EmailRecognizer

    class AnyDomainEmail(EmailRecognizer):
        """Presidio drops an address whose domain is not a public suffix (`attacker@evil.example`,
        intranet and reserved names): an address is personal data whatever its domain."""

        def validate_result(self, pattern_text: str) -> bool:
            domain = pattern_text.rsplit("@", 1)[-1]
            tld = domain.rsplit(".", 1)[-1]
            return "." in domain and len(tld) >= 2 and tld.isalpha()

    return AnyDomainEmail()


_SSN_SHAPE = re.compile(r"\d{3}-\d{2}-\d{4}")
_PHONE_CONTEXT = re.compile(r"(?i)\b(phone|tel|telephone|call|mobile|cell|fax|sms|whatsapp|contact|reach|dial)\b")
_NUMBER = re.compile(r"\d[\d,.]*")
_PERSON_CUE = re.compile(
    r"(?i)\b(mr|mrs|ms|miss|mx|dr|prof|sir|madam|dear|hi|hello|thanks|regards|signed|sincerely|name[sd]?|ask|"
    r"contact|cc|attn|patient|employee|customer|client)\b[.,:]?\s*$"
)


_NAME_WORD = r"[A-Z][^\W\d_]+(?:['’-][A-Z]?[^\W\d_]+)?"
_HONORIFIC_NAME = re.compile(
    rf"\b(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sir|Madam)\.?\s+({_NAME_WORD}(?:\s+{_NAME_WORD}){{0,2}})"
)
_GREETING_NAME = re.compile(rf"\b(?:Dear|Hi|Hello|Hey)\s+({_NAME_WORD}(?:\s+{_NAME_WORD}){{0,2}})\s*(?=[,!:]|$)", re.M)


def _addressed_names(text: str) -> list[Span]:
    """Names after an honorific ("Dr. Okafor") or in a greeting ("Dear Maria,"): the small NER
    model misses most of them, and the title or the salutation is evidence enough."""
    out = []
    for pattern in (_HONORIFIC_NAME, _GREETING_NAME):
        for m in pattern.finditer(text):
            out.append(Span(start=m.start(1), end=m.end(1), entity="PERSON", score=0.7))
    return out


def _lower_case_words(text: str) -> set[str]:
    """The text's whole words written in lower case (the "maria" of maria.gonzalez@example.com is
    not one: it says nothing about "Maria")."""
    return {w for w in (t.strip(string.punctuation + "“”‘’") for t in text.split()) if w.isalpha() and w.islower()}


def _line_around(text: str, s: Span) -> tuple[str, str]:
    """What stands on the span's line before it and after it."""
    start = text.rfind("\n", 0, s.start) + 1
    end = text.find("\n", s.end)
    return text[start : s.start], text[s.end : end if end >= 0 else len(text)]


def _plausible(text: str, s: Span, lower: set[str]) -> bool:
    """Detections that carry no sign of being personal data are dropped (measured: `make bench-pii`)."""
    span = text[s.start : s.end]
    if s.entity == "PHONE_NUMBER":
        return _plausible_phone(text, s, span)
    if s.entity == "PERSON":
        return _plausible_person(text, s, span, lower)
    return s.entity not in _NER_ONLY or _looks_like_name(span)


def _plausible_phone(text: str, s: Span, span: str) -> bool:
    if _SSN_SHAPE.fullmatch(span.strip()):
        return False  # no numbering plan groups digits 3-2-4: that is a US SSN's shape
    left, right = _line_around(text, s)
    before = text[max(0, s.start - 40) : s.start]
    if _PHONE_CONTEXT.search(before) or span.lstrip().startswith(("+", "(")):
        return True
    if span.isdigit():
        return False  # a bare run of digits: an id, a count, a table cell, unless something says phone
    # A number among other numbers (a table row, a list of figures) is a figure. The span's own
    # digit groups ("555 123 4567") are one number, not three.
    return len(_NUMBER.findall(left)) + len(_NUMBER.findall(right)) < 3


def _plausible_person(text: str, s: Span, span: str, lower: set[str]) -> bool:
    """The small NER model calls many capitalised words people: headings, gene and method names,
    sentence-initial words. A name must look like one, and where its case says nothing (a single
    word, Title Case text) something around it must say person."""
    if not _looks_like_name(span):
        return False
    cue = bool(_PERSON_CUE.search(text[max(0, s.start - 30) : s.start]))
    words = span.replace("-", " ").replace("'", " ").split()
    if len(words) == 1 or any(len(w) == 1 for w in span.split()):  # "Factor V Leiden", "Aurora B"
        return cue
    # A word of the span written in lower case elsewhere in the text is a common word, not a name.
    if any(w.lower() in lower for w in words):
        return cue
    # In Title Case text (a heading, a list of capitalised words) capitals carry no signal.
    others = re.findall(r"\b[^\W\d_]{4,}\b", " ".join(_line_around(text, s)))
    if len(others) >= 2 and sum(w[0].isupper() for w in others) / len(others) >= 0.6:
        return cue
    return True


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
