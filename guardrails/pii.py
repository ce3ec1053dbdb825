"""PII detection and redaction with Presidio: documents at ingest, questions and feedback at the edge.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guardrails.pseudonyms import Pseudonyms
from keel import offline


@dataclass
class Redaction:
    text: str
    counts: dict[str, int]
    tokens: dict[str, str] = field(default_factory=dict)  # pseudonym token -> the value it stands for


# What Presidio reads of a spaCy doc: entities (the NER component) and lemmas (its context
# words). The tagger, attribute ruler and lemmatizer exist only to make lemmas, and the context
# words match as substrings ("phone" in "phones"), so the lower-cased token does as well at a
# fraction of the cost; the parser's output is read by nothing.
_UNUSED = ["parser", "tagger", "attribute_ruler", "lemmatizer", "senter"]
LOWER_LEMMA = "keel_lower_lemma"


def _lower_lemma(doc: Any) -> Any:
    # One array copy in C: setting `token.lemma_` token by token made a Python Token object
    # for each (a sixth of redaction's time on abstracts).
    from spacy.attrs import LEMMA, LOWER

    doc.from_array([LEMMA], doc.to_array([LOWER]))
    return doc


def _register_lower_lemma() -> None:
    from spacy.language import Language

    if LOWER_LEMMA not in Language.factories:
        Language.component(LOWER_LEMMA, func=_lower_lemma)


def _blank_pipeline() -> Any:
    """English tokenization and the lower-case lemma, no model: what the pattern recognizers need."""
    import spacy

    _register_lower_lemma()
    nlp = spacy.blank("en")
    nlp.add_pipe(LOWER_LEMMA)
    return nlp


def _load_pipeline(use_ner: bool) -> tuple[Any, bool]:
    import spacy

    model_dir = offline.spacy_model_dir() if use_ner else None
    if model_dir is None:
        return _blank_pipeline(), False
    _register_lower_lemma()
    # The shared tok2vec feeds the tagger and parser; it goes too when NER has an encoder of its
    # own (en_core_web_sm's does), which leaves NER's output unchanged (tests/ingestion/test_redact.py).
    ner = spacy.util.load_config(Path(model_dir) / "config.cfg")["components"]["ner"]["model"]["tok2vec"]
    listens = "Listener" in str(ner.get("@architectures", ""))
    nlp = spacy.load(model_dir, exclude=_UNUSED if listens else [*_UNUSED, "tok2vec"])
    nlp.add_pipe(LOWER_LEMMA)
    return nlp, True


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
            def __init__(self, pipeline: Any) -> None:
                self._pipeline = pipeline
                super().__init__(models=[{"lang_code": "en", "model_name": "preloaded"}])
                self.load()

            def load(self) -> None:  # never spacy.cli.download
                self.nlp = {"en": self._pipeline}  # type: ignore[assignment]

        self._engine = _PreloadedSpacy(nlp)
        self._analyzer = AnalyzerEngine(nlp_engine=self._engine, supported_languages=["en"])
        self._analyzer.registry.remove_recognizer("EmailRecognizer")
        self._analyzer.registry.add_recognizer(_any_domain_email())
        self._analyzer.registry.remove_recognizer("PhoneRecognizer")
        self._analyzer.registry.add_recognizer(_phone_numbers())
        self._anonymizer = AnonymizerEngine()
        self.entities = [e for e in entities if self.has_ner or e not in _NER_ONLY]
        self.names = "PERSON" in entities  # addressed names are found by pattern, with or without NER
        # NER is the costly part, and PERSON its only entity by default: a text in which no person
        # `_plausible_person` would keep can stand (`could_name_a_person`) is tokenized without it.
        ner_entities = set(self.entities) & _NER_ONLY
        self._tokens_only = _PreloadedSpacy(_blank_pipeline()) if ner_entities == {"PERSON"} else None
        self.score_threshold = score_threshold
        # spaCy pipelines are not documented as thread-safe; the lock costs little on 2 cores.
        self._lock = threading.Lock()

    def redact(self, text: str) -> Redaction:
        return self.redact_many([text])[0]

    def redact_many(self, texts: Sequence[str], pseudonyms: Pseudonyms | None = None) -> list[Redaction]:
        """Each text with its PII replaced, analysed in one batch (`find_many`): by the tenant's
        keyed pseudonyms and per-type choices when given (`guardrails.pseudonyms`), else by
        blank placeholders."""
        from presidio_analyzer import RecognizerResult

        out = []
        for text, spans in zip(texts, self.find_many(texts), strict=True):
            if not spans:
                out.append(Redaction(text, {}))
                continue
            if pseudonyms is not None:
                done = pseudonyms.replace(text, spans)
                out.append(Redaction(done.text, done.counts, done.tokens))
                continue
            results = [RecognizerResult(s.entity, s.start, s.end, s.score) for s in spans]
            anonymized = self._anonymizer.anonymize(text=text, analyzer_results=results)  # type: ignore[arg-type]
            out.append(Redaction(anonymized.text, dict(Counter(item.entity_type for item in anonymized.items))))
        return out

    def find(self, text: str) -> list[Span]:
        """The PII spans of `text`, non-overlapping, in order (what `redact` replaces)."""
        return self.find_many([text])[0]

    def find_many(self, texts: Sequence[str]) -> list[list[Span]]:
        """`find` for each text. spaCy reads them all in one `nlp.pipe` (a document's title,
        chunks and headings; the windows of a long text), then the recognizers run per text."""
        if not self.entities:  # Presidio reads an empty list as "every entity it knows": nothing to find
            return [[] for _ in texts]
        pieces = [(i, start, window) for i, t in enumerate(texts) if t.strip() for start, window in windows(t)]
        found: list[dict[tuple[int, int, str], float]] = [{} for _ in texts]
        with self._lock:
            for engine, share in self._engines(pieces):
                docs = engine.process_batch([w for _, _, w in share], language="en", batch_size=PIPE_BATCH)
                for (i, start, window), (_, artifacts, *_) in zip(share, docs, strict=True):
                    results = self._analyzer.analyze(
                        window,
                        language="en",
                        entities=self.entities,
                        score_threshold=self.score_threshold,
                        nlp_artifacts=artifacts,
                    )
                    for r in results:  # found again in an overlap: the same key
                        key = (r.start + start, r.end + start, r.entity_type)
                        found[i][key] = max(found[i].get(key, 0.0), r.score)
        return [self._kept(text, hits) for text, hits in zip(texts, found, strict=True)]

    def _engines(self, pieces: list[tuple[int, int, str]]) -> list[tuple[Any, list[tuple[int, int, str]]]]:
        """The pieces NER must read, and those tokenization alone serves."""
        if self._tokens_only is None:
            return [(self._engine, pieces)]
        named: list[tuple[int, int, str]] = []
        unnamed: list[tuple[int, int, str]] = []
        for p in pieces:
            (named if could_name_a_person(p[2]) else unnamed).append(p)
        return [(self._engine, named), (self._tokens_only, unnamed)]

    def _kept(self, text: str, found: dict[tuple[int, int, str], float]) -> list[Span]:
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
PIPE_BATCH = 16  # texts a spaCy batch: a document's pieces, rarely more


def windows(text: str, size: int = WINDOW_CHARS, overlap: int = WINDOW_OVERLAP_CHARS) -> list[tuple[int, str]]:
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


# Digits a phone number could be made of: digits with at most a few spaces or punctuation marks
# between them (the matcher's numbers never have letters inside; extensions come after).
_DIGIT_RUN = re.compile(r"\d(?:[^\w]{0,4}\d)*")


def _phone_numbers() -> Any:
    import phonenumbers
    from presidio_analyzer import EntityRecognizer
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    shortest = {}  # region -> the fewest digits of a valid number there
    for region in PhoneRecognizer().supported_regions:
        meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
        desc = meta.general_desc if meta is not None else None
        shortest[region] = min(desc.possible_length, default=1) if desc is not None else 1

    class RegionsThatFit(PhoneRecognizer):
        """Presidio's phone recognizer scans the whole text once per region (eight by default),
        and abstracts full of figures ("p < 0.001", "1.2-3.4") keep the matcher busy: a quarter of
        redaction's time. A region is scanned only if some run of digits in the text is as long
        as that region's shortest valid number; a number in international form is found by the
        scan of any region, so it is still found by one that is scanned. What is found is
        unchanged (tests/ingestion/test_redact.py compares it with Presidio's own)."""

        def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[Any]:
            longest = max((sum(c.isdigit() for c in m.group(0)) for m in _DIGIT_RUN.finditer(text)), default=0)
            leniency = self.leniency if self.leniency is not None else phonenumbers.Leniency.VALID
            results = []
            for region in self.supported_regions:
                if shortest.get(region, 1) > longest:
                    continue
                for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=leniency):
                    try:
                        found_in = phonenumbers.region_code_for_number(
                            phonenumbers.parse(text[match.start : match.end])
                        )
                    except phonenumbers.NumberParseException:
                        found_in = region
                    results.append(self._get_recognizer_result(match, text, found_in, nlp_artifacts))
            return list(EntityRecognizer.remove_duplicates(results))

    return RegionsThatFit()


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
    others = _LONG_WORD.findall(" ".join(_line_around(text, s)))
    if len(others) >= 2 and sum(w[0].isupper() for w in others) / len(others) >= 0.6:
        return cue
    return True


_LONG_WORD = re.compile(r"\b[^\W\d_]{4,}\b")
_PIECE = re.compile(r"[^\W\d_]+")  # a run of letters: a word, or one part of O'Brien or Jean-Luc


def could_name_a_person(text: str) -> bool:
    """Whether NER could find a PERSON in `text` that `_plausible_person` would keep.

    A kept person looks like a name (`_looks_like_name`: capitalised words, the rest lower case)
    and is either two or more words, so two capitalised letter runs with only whitespace (or one
    hyphen or apostrophe, which split words there) between them, or stands after a person cue (`_PERSON_CUE`). A text with neither holds no person the
    filters would keep, so NER's output there would be thrown away: it is not computed. Checked
    against running NER on everything by tests/ingestion/test_redact.py and `make bench-pii`.
    """
    prev_end, prev_title = -1, False
    for m in _PIECE.finditer(text):
        piece = m.group()
        title = piece[0].isupper() and (len(piece) == 1 or piece[1:].islower())
        if title:
            gap = text[prev_end : m.start()]
            if prev_title and (gap.isspace() or gap in ("-", "'")):  # "Ada Lovelace", "Jean-Luc"
                return True
            if _PERSON_CUE.search(text[max(0, m.start() - 30) : m.start()]):
                return True
        prev_end, prev_title = m.end(), title
    return False


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
