"""Which passage supports each sentence of an answer, whoever wrote (or forgot) the citations.

Small instruct models drop the `[n]` markers the prompt asks for, or put them on the wrong
passage. Validation therefore checks every claim of an answer, not only the cited ones:

- A sentence is a claim unless it declines ("the sources do not say ...") or has fewer than
  `MIN_CLAIM_STEMS` content words ("Here is the answer:").
- A passage supports a claim when enough of the claim's content words (stemmed) occur in it
  (`Thresholds.lexical`), or when one of its sentences is close to the claim in the embedding
  space and they still share some words (`Thresholds.dense` and `Thresholds.dense_lexical`):
  paraphrase passes, a fluent sentence on another topic does not. The thresholds are fitted on
  held-out SQuAD questions (`bench/grounding.py`), not guessed.
- A passage that lacks one of the claim's specific facts (a number, a negation, a name:
  `generation.facts`) does not support it, however close the words: that is how small models
  slip, above all when they repeat a question's false premise.
- With a verifier (`generation.verify`), each citation that passes is put to a model as a yes/no
  question before it stands, on the passage's one sentence that holds most of the claim's words
  (`evidence`): the check for a sentence that reuses a passage's words in another relation.
- A citation the model wrote is kept when its passage supports the sentence. A sentence with no
  supporting citation gets the passage that supports it best (`attributed`). A claim no passage
  supports is left uncited and listed: the answer is `ungrounded`.

`source` says where the kept citations came from: `model`, `attributed`, `mixed`, or `none`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from contracts.query import ContextPassage
from generation import facts
from generation.terms import stems
from generation.verify import Check, Verifier

REF = re.compile(r"\[(\d{1,3})\]")
# A sentence ends at . ! ? (or after a citation) before a capital; "[n]" right after a full stop
# still belongs to the sentence before it.
SENTENCE = re.compile(r"(?<=[.!?])\s+(?!\[)|(?<=\])\s+(?=[A-Z])|\n+")
_PASSAGE_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"“(])|\n+")
# From a run's start only: a search that may begin inside the run re-reads it from each position.
_SPACE_BEFORE_MARK = re.compile(r"(?<![ \t])[ \t]+([.,;:!?])")
_ANY_WORD = re.compile(r"[^\W_]")  # a letter or a digit
# An answer's way of saying the sources do not hold the answer: nothing to cite.
DECLINE = re.compile(
    r"(?i)\b(the (documents?|sources?|context|passages?|text) (do(es)? not|don't|doesn't|did not) "
    r"(say|mention|contain|answer|state|include|provide|specify)"
    r"|no (answer|information|mention) (is |was )?(given|found|available|provided)"
    r"|cannot (be )?answer(ed)?|can't answer|not enough information|(is|are) not (mentioned|stated|given))"
)
MIN_CLAIM_STEMS = 3
MAX_VERIFIED = 2  # passages put to the verifier per sentence, best first
MAX_PASSAGE_SENTENCES = 24  # per passage, for the dense check: a context passage is a few hundred words

Embed = Callable[[list[str]], np.ndarray]  # texts -> unit vectors, one row each


@dataclass(frozen=True, kw_only=True)
class Thresholds:
    # Fitted by `make bench-grounding` on three SQuAD articles (the most claims cited with their
    # own paragraph at a citation precision of 0.9, each claim tried with and without that
    # paragraph among the candidates), checked on three others. They were fitted before the fact
    # check (`generation.facts`) came in front of them and are kept: refitted behind it, the fit's
    # looser choice falls to 0.76 precision on the held-out articles, these hold 0.90.
    lexical: float = 0.52  # share of the claim's content stems the passage holds
    dense: float = 0.72  # cosine of the claim to the passage's closest sentence
    dense_lexical: float = 0.2  # with the dense check, the share of stems still needed


@dataclass(kw_only=True)
class Sentence:
    text: str  # as the model wrote it, citations taken out
    claim: bool
    refs: list[int] = field(default_factory=list)  # the citations kept or added
    attributed: bool = False  # its citation was added here (the model's was missing or wrong)
    supported: bool = True
    sep: str = ""  # what followed it in the answer (a space, a line break), kept as it was


@dataclass(kw_only=True)
class Grounding:
    text: str  # the answer with the citations kept and added
    sentences: list[Sentence]
    invalid_refs: list[int]  # citations of passages that were not in the context, removed
    source: str  # model | attributed | mixed | none
    unverified: bool = False  # a citation the verifier could not be asked about (budget, failure)

    @property
    def unsupported(self) -> list[str]:
        return [s.text for s in self.sentences if s.claim and not s.supported]

    @property
    def ungrounded(self) -> bool:
        return bool(self.unsupported)

    @property
    def refs(self) -> list[int]:
        out: list[int] = []
        for s in self.sentences:
            out.extend(r for r in s.refs if r not in out)
        return out

    @property
    def supported_rate(self) -> float:
        claims = [s for s in self.sentences if s.claim]
        return sum(s.supported for s in claims) / len(claims) if claims else 0.0


def lexical_support(claim: str, passage: str) -> float:
    return _covered(stems(claim), stems(passage))


def _covered(words: set[str], source: set[str]) -> float:
    return len(words & source) / len(words) if words else 0.0


def passage_sentences(text: str) -> list[str]:
    return _split(text)[:MAX_PASSAGE_SENTENCES]


def reading(claim: str, question: str) -> str:
    """A claim as it is scored and verified: a bare answer ("1889.") with the question it answers."""
    return claim if len(stems(claim)) >= MIN_CLAIM_STEMS else f"{question} {claim}".strip()


def evidence(claim: str, passage: str) -> str:
    """The one sentence of `passage` that holds most of the claim's words: what the verifier reads.

    Given a whole passage, a small model says yes to a sentence that takes its words from two
    places in it ("The Air Force works on three key ideas", where the ideas are Baran's and the
    Air Force only paid for them). Given the one sentence that would have to state the claim, it
    reads the relation. A claim that needs two of the passage's sentences is refused for it and
    left unsupported: the flag, not a citation that may be wrong.
    """
    words = stems(claim)
    best = max(_split(passage), key=lambda s: len(words & stems(s)), default=passage)
    return best if words & stems(best) else passage


def _split(text: str) -> list[str]:
    return [s for s in (p.strip() for p in _PASSAGE_SENTENCE.split(text)) if s]


class Grounder:
    def __init__(
        self, embed: Embed | None, thresholds: Thresholds | None = None, verifier: Verifier | None = None
    ) -> None:
        self.embed = embed  # None: lexical support only
        self.t = thresholds or Thresholds()
        self.verifier = verifier  # None: what words, meaning and facts decide stands

    def ground(self, text: str, passages: Sequence[ContextPassage], question: str = "") -> Grounding:
        by_ref = {p.ref: p for p in passages}
        invalid = sorted({int(m) for m in REF.findall(text) if int(m) not in by_ref})
        sentences = [self._sentence(piece, sep, by_ref) for piece, sep in _pieces(text)]
        if not any(s.claim for s in sentences):
            # A bare answer ("In 1889.", "France", "2"): still a claim to source, read with the
            # question it answers, whose words it leaves out. A lone digit has no stem, but it
            # is an answer: left out, it came back neither cited nor flagged.
            for s in sentences:
                s.claim = _ANY_WORD.search(s.text) is not None and not DECLINE.search(s.text)
        claims = [s for s in sentences if s.claim]
        read = [reading(s.text, question) for s in claims]
        source = {ref: stems(p.text) for ref, p in by_ref.items()}  # each passage's words, once
        held = {ref: facts.source(p.text) for ref, p in by_ref.items()}
        stated = [facts.claimed(c, question) for c in read]  # each claim's facts, once
        lexical = {(i, ref): _covered(stems(c), source[ref]) for i, c in enumerate(read) for ref in by_ref}
        dense = self._dense(read, passages) if claims else {}
        check = self.verifier.session() if self.verifier is not None else None
        unverified = False
        for i, s in enumerate(claims):
            supports = {
                ref: lexical[i, ref] + dense.get((i, ref), 0.0)  # a ranking: words first, meaning breaks ties
                for ref in by_ref
                if self._supports(lexical[i, ref], dense.get((i, ref), 0.0)) and not stated[i].missing_from(held[ref])
            }
            kept = [r for r in s.refs if r in supports]
            if check is not None:  # the verifier has the last word on each citation
                # A bare answer is put to it with the question it answers, as it was read above.
                kept, supports, unchecked = _verified(read[i], kept, supports, by_ref, check)
                unverified = unverified or unchecked
            if kept:
                s.refs = kept
            elif supports:
                s.refs, s.attributed = [max(supports, key=supports.__getitem__)], True
            else:
                s.refs, s.supported = [], False
        return Grounding(
            text=_with_refs(sentences),
            sentences=sentences,
            invalid_refs=invalid,
            source=_source(claims),
            unverified=unverified,
        )

    def _supports(self, lexical: float, dense: float) -> bool:
        t = self.t
        return lexical >= t.lexical or (dense >= t.dense and lexical >= t.dense_lexical)

    def _sentence(self, piece: str, sep: str, by_ref: dict[int, ContextPassage]) -> Sentence:
        refs: list[int] = []
        for m in REF.findall(piece):
            if int(m) in by_ref and int(m) not in refs:
                refs.append(int(m))
        text = _SPACE_BEFORE_MARK.sub(r"\1", REF.sub("", piece)).strip()
        claim = not DECLINE.search(text) and len(stems(text)) >= MIN_CLAIM_STEMS
        return Sentence(text=text, claim=claim, refs=refs, sep=sep)

    def _dense(self, claims: list[str], passages: Sequence[ContextPassage]) -> dict[tuple[int, int], float]:
        """(claim index, passage ref) -> cosine of the claim to the passage's closest sentence."""
        if self.embed is None:
            return {}
        pieces = [(p.ref, s) for p in passages for s in passage_sentences(p.text)]
        if not pieces:
            return {}
        vectors = self.embed(claims + [s for _, s in pieces])
        sims = vectors[: len(claims)] @ vectors[len(claims) :].T
        out: dict[tuple[int, int], float] = {}
        for j, (ref, _) in enumerate(pieces):
            for i in range(len(claims)):
                out[i, ref] = max(out.get((i, ref), -1.0), float(sims[i, j]))
        return out


def _verified(
    sentence: str, kept: list[int], supports: dict[int, float], by_ref: dict[int, ContextPassage], check: Check
) -> tuple[list[int], dict[int, float], bool]:
    """What the verifier leaves of a sentence's candidates: (the model's citations it accepts,
    the one passage left to attribute from if it accepts none of them, whether a check could not
    be made). Attribution tries the best-scoring passages first, `MAX_VERIFIED` of them. A
    passage the verifier could not be asked about keeps the place the words gave it. The verifier
    reads each passage's `evidence` for the sentence, not the whole passage."""

    def ask(ref: int) -> bool | None:
        return check(sentence, evidence(sentence, by_ref[ref].text))

    unchecked = False
    if kept:
        verdicts = {ref: ask(ref) for ref in kept}
        unchecked = any(v is None for v in verdicts.values())
        accepted = [ref for ref in kept if verdicts[ref] is not False]
        if accepted:
            return accepted, {}, unchecked
        supports = {ref: v for ref, v in supports.items() if ref not in kept}
    for ref in sorted(supports, key=supports.__getitem__, reverse=True)[:MAX_VERIFIED]:
        verdict = ask(ref)
        if verdict is not False:
            return [], {ref: supports[ref]}, unchecked or verdict is None
    return [], {}, unchecked


def _pieces(text: str) -> list[tuple[str, str]]:
    """The answer's sentences, each with the separator that followed it."""
    out = []
    start = 0
    for m in SENTENCE.finditer(text):
        out.append((text[start : m.start()], m.group(0)))
        start = m.end()
    out.append((text[start:], ""))
    return [(piece, sep) for piece, sep in out if piece.strip()]


def _with_refs(sentences: list[Sentence]) -> str:
    parts = []
    for s in sentences:
        marks = "".join(f"[{r}]" for r in s.refs)
        if not marks:
            parts.append(s.text)
        elif s.text[-1:] in ".!?":
            parts.append(f"{s.text[:-1]} {marks}{s.text[-1]}")
        else:
            parts.append(f"{s.text} {marks}")
        parts.append(s.sep)
    return "".join(parts).strip()


def _source(claims: list[Sentence]) -> str:
    cited = [s for s in claims if s.refs]
    if not cited:
        return "none"
    added = sum(s.attributed for s in cited)
    return "model" if added == 0 else "attributed" if added == len(cited) else "mixed"
