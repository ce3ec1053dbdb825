"""The second hop's links: the documents that the top passages name by their title.

A question whose answer spans two passages ("the woman who portrayed Corliss Archer in Kiss and
Tell held which office?") is answered by a passage that the question does not describe: the
first passage names it ("... Shirley Temple ..."), the way a hyperlink would. Each document
carries its title folded (`title_key`), so the names a passage holds can be looked up in one
filtered search: every run of one to MAX_WORDS words that starts with a capital letter or a digit
is a candidate name, folded as titles are. Names the question already holds were searched by the
first hop and are left out, and so are the linking passages' own titles.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

from contracts.query import Scored
from keel.words import STOP_WORDS
from retrieval.fusion import RRF_K

MAX_WORDS = 6  # the longest title looked for, in words
MAX_NAMES = 256  # candidate names per hop: one filter, bounded whatever the passages hold
_WORD = re.compile(r"[^\W_][\w'’.&-]*", re.UNICODE)
_EDGES = "'’.&-"
# A redaction placeholder ("<PERSON>") stands for any name: a title holding one is never linked, and
# no name runs across one. (A keyed pseudonym, PERSON_q7tm2kxa, is one name: it links.)
_PLACEHOLDER = re.compile(r"<[A-Z][A-Z_]*>")


def title_key(title: str) -> str:
    """A title as passages are matched against it: NFKC, case-folded, words single-spaced, the
    punctuation around each word dropped ("The Lord of the Rings:" -> "the lord of the rings")."""
    if _PLACEHOLDER.search(title):
        return ""
    folded = unicodedata.normalize("NFKC", title).casefold()
    return " ".join(w.strip(_EDGES) for w in _WORD.findall(folded) if w.strip(_EDGES))


def names_in(texts: Iterable[str], question: str, own_titles: Iterable[str] = ()) -> list[str]:
    """Folded candidate titles named by `texts`, in the order they first appear, at most MAX_NAMES.

    A candidate starts at a capitalised word or a number and runs up to MAX_WORDS words; a single
    stop word is never one. What the question or the linking passages' titles already name is left
    out (a name inside the question was searched for already).
    """
    asked = f" {title_key(question)} "
    own = {title_key(t) for t in own_titles}
    seen: dict[str, None] = {}
    for text in texts:
        for part in _PLACEHOLDER.split(unicodedata.normalize("NFKC", text)):
            if _collect(part, asked, own, seen):
                return list(seen)
    return list(seen)


def _collect(text: str, asked: str, own: set[str], seen: dict[str, None]) -> bool:
    """Add the text's candidate names to `seen`; True once it holds MAX_NAMES."""
    words = [w.strip(_EDGES) for w in _WORD.findall(text)]
    words = [w for w in words if w]
    for i, first in enumerate(words):
        if not (first[0].isupper() or first[0].isdigit()):
            continue
        for n in range(1, MAX_WORDS + 1):
            if i + n > len(words):
                break
            key = " ".join(words[i : i + n]).casefold()
            if n == 1 and (key in STOP_WORDS or len(key) < 3):
                continue
            if key in own or f" {key} " in asked:
                continue
            seen.setdefault(key, None)
            if len(seen) >= MAX_NAMES:
                return True
    return False


def with_links(first: Sequence[Scored], linked: Sequence[Scored], k: int = RRF_K) -> list[Scored]:
    """The first hop's ranking with the linked passages fused in by reciprocal rank, both lists
    weighing the same: a linked passage lands beside the first hop's passages of its rank."""
    score: dict[str, float] = {}
    by_id: dict[str, Scored] = {}
    for ranking in (first, linked):
        for rank, s in enumerate(ranking):
            score[s.point_id] = score.get(s.point_id, 0.0) + 1.0 / (k + rank + 1)
            by_id.setdefault(s.point_id, s)
    order = sorted(by_id, key=lambda pid: -score[pid])  # stable: ties keep the first hop's order
    return [by_id[pid] for pid in order]
