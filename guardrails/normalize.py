"""Text as a detector should read it: what hides an instruction from a pattern is undone first.

NFKC folds full-width and stylised letters; zero-width and bidirectional controls are removed
(they split words invisibly or reorder them on screen); Cyrillic and Greek letters that look
Latin are read as Latin inside words that mix scripts; escaped newlines become spaces. Encoded
payloads (base64-looking runs, rot13) are decoded so the detector can read them too.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata

from keel.words import WORD

_INVISIBLE = dict.fromkeys(
    [
        *(0x00AD, 0x180E, 0x200B, 0x200C, 0x200D, 0x2060, 0x2061, 0x2062, 0x2063, 0x2064, 0xFEFF),
        *range(0x202A, 0x202F),  # bidi embeddings and overrides
        *range(0x2066, 0x206A),  # bidi isolates
        *(0x200E, 0x200F, 0x061C),  # direction marks
    ]
)
# Letters of other scripts drawn like Latin ones (the common confusables).
_LOOKALIKE = str.maketrans(
    "АВЕЅІЈКМНОРСТХУаеіјорсухѕԁԛԝɡΑΒΕΗΙΚΜΝΟΡΤΧΥΖαοτνικρ",
    "ABESIJKMHOPCTXYaeijopcyxsdqwgABEHIKMNOPTXYZaotvikp",
)
_WORD = WORD  # keel.words
_LATIN = re.compile(r"[A-Za-z]")
_BASE64 = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")
_ESCAPED = re.compile(r"\\\s*[nrt]")


def normalize(text: str) -> str:
    if text.isascii():  # nothing to fold, hide or disguise (the common case, kept cheap)
        return _ESCAPED.sub(" ", text)
    text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE)
    text = _ESCAPED.sub(" ", text)
    return _WORD.sub(_unmix, text)


def _unmix(match: re.Match[str]) -> str:
    word = match.group(0)
    if not _LATIN.search(word) or word.isascii():
        return word
    return word.translate(_LOOKALIKE)


def decoded(text: str) -> list[str]:
    """What encoded runs in the text say: base64 that decodes to readable text, and the rot13
    reading of the text (an instruction in rot13 reads as one once turned back)."""
    found = []
    for run in _BASE64.findall(text):
        try:
            raw = base64.b64decode(run + "=" * (-len(run) % 4), validate=True)
        except (binascii.Error, ValueError):
            continue
        plain = raw.decode("utf-8", errors="ignore")
        if plain and sum(c.isprintable() for c in plain) / len(plain) > 0.9 and _WORD.search(plain):
            found.append(plain)
    if _reads_as_language(text) is False:  # rot13 is only worth reading in text that is not plain
        found.append(codecs.decode(text, "rot13"))
    return found


_COMMON = frozenset(
    [
        "the",
        "a",
        "an",
        "and",
        "or",
        "of",
        "to",
        "in",
        "is",
        "are",
        "you",
        "your",
        "i",
        "it",
        "for",
        "on",
        "with",
        "this",
        "that",
        "be",
        "not",
        "der",
        "die",
        "das",
        "und",
        "ist",
        "ein",
        "eine",
        "zu",
        "nicht",
        "sie",
        "du",
        "ich",
        "le",
        "la",
        "les",
        "et",
        "est",
        "un",
        "une",
        "de",
        "des",
        "el",
        "los",
        "las",
        "y",
        "es",
        "en",
    ]
)


def _reads_as_language(text: str) -> bool | None:
    """True when common words make up a fair share of the text, False when none do (a code or
    an encoding), None when it is too short to say."""
    words = [w.lower() for w in _WORD.findall(text)]
    if len(words) < 4:
        return None if not words else any(w in _COMMON for w in words) or None
    return sum(w in _COMMON for w in words) / len(words) >= 0.08
