"""Prompt-injection detection: instruction-like text aimed at the model, in a question or a chunk.

Layered, offline, CPU only. The text is normalised (`guardrails.normalize`) and split into
sentences; each sentence is matched against families of rules, each a kind of move an injection
makes (override earlier instructions, switch the model's role, pull out its prompt, force an
output, frame a new task, name a jailbreak), in English, German, French and Spanish. A sentence's
score is the sum of its families' weights; a text's is its best sentence's, or its encoded
payloads' (base64, rot13). A text is flagged at `threshold`. Weights and threshold are fitted by
`python -m bench.tune_guard` on half of the development set with the false-positive rate as the
constraint (`guardrails/injection.json`); single words ("ignore", "bypass") never flag alone, a
family needs the move and its object together.

An optional local classifier (`KEEL_INJECTION_MODEL`: a sequence-classification model directory,
`guardrails.classifier`) flags a text on its own when its probability clears
`KEEL_INJECTION_MODEL_THRESHOLD`; none ships, and without one the rules decide alone.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import re2

from guardrails.classifier import LocalClassifier
from guardrails.normalize import decoded, normalize
from keel.config import get_settings

FITTED = Path(__file__).with_name("injection.json")

_I = re.IGNORECASE | re.UNICODE
# Each optional word takes its own trailing whitespace: two optional words with a `\s*` between
# them and another after backtracked cubically on a run of spaces ("ignore" + 2,000 spaces).
_PRIOR = (
    r"(?:(?:all|any|every|the|your|my|these|those|of\s+the)\s+)?(?:(?:previous|prior|above|earlier|preceding|"
    r"foregoing|former|initial|original|old|given|preset|system|last)\s+)?"
)
_GUIDANCE = (
    r"(?:instructions?|prompts?|rules?|directions?|directives?|tasks?|context|guidelines?|commands?|orders?|"
    r"programming|constraints?|restrictions?|information|conversation|messages?|text|input|everything|"
    r"all|above)"
)
FAMILIES: dict[str, list[str]] = {
    # Override what came before.
    "override": [
        rf"\b(?:ignore|disregard|forget|skip|overlook|neglect|abandon|drop|override|bypass|discard|erase|delete)\s+"
        rf"(?:about\s+)?{_PRIOR}{_GUIDANCE}",
        r"\b(?:forget|ignore|disregard)\s+(?:about\s+)?(?:everything|all|anything)\b",
        r"\b(?:vergiss|vergessen\s+sie|ignoriere|ignorieren\s+sie|missachte|missachten\s+sie|übergehe)\b.{0,40}?"
        r"\b(?:alles|alle|vorherigen?|bisherigen?|obigen?|anweisungen|aufgaben|instruktionen|informationen|davor|zuvor)",
        r"\b(?:alle|die)\s+(?:bisherigen|vorherigen|obigen)\s+\w+.{0,40}\b(?:irrelevant|unwichtig|ungültig|egal)",
        r"\b(?:obigen|vorherigen|bisherigen|vorigen)\s+\w+\s+(?:ignorieren|vergessen|missachten)\b",
        r"\b(?:lass|lassen\s+sie)\s+alle\s+(?:vorherigen|bisherigen)\s+\w+\s+hinter\s+sich",
        r"\b(?:oubliez|oublie|ignorez|ignore)\s+(?:toutes?|tout|les)\b",
        r"\b(?:olvida|ignora|olvide|ignore)\s+(?:todas?|todo|las|los)\b",
        r"\bdespite\s+what\s+you(?:'ve|\s+have|\s+were)\s+(?:been\s+)?told\b",
        r"\bnot\s+(?:by|from)\s+the\s+(?:articles?|context|documents?|sources?|texts?)\b",
        rf"{_GUIDANCE}\s+(?:above|before|so\s+far)\s+(?:are|is)\s+(?:irrelevant|void|cancel+ed|obsolete|wrong)",
    ],
    # Switch the model's role or persona.
    "role": [
        r"\b(?:you\s+are\s+now|now\s+you\s+are)\s+(?:a|an|the|my|in|called|named|known\s+as|(?-i:[A-Z]))\b",
        r"\b(?:from\s+now\s+on,?\s+you\s+(?:are|will|must|act|respond|answer|reply|behave|only)|"
        r"you\s+will\s+now\s+(?:act|be|play)|you\s+are\s+no\s+longer)\b",
        # "act as a ..." given as an order ("X can act as a tumour suppressor" is a description).
        r"(?:⟪start⟫(?:please\s+|now\s+|and\s+)?|\byou\s+(?:will|must|should|shall|to|now|are\s+to)\s+|"
        r"\b(?:please|now|then)\s+)(?:act|behave|respond|function)\s+as\s+(?:a|an|the|if|my)\b",
        r"\bpretend\s+(?:to\s+be|you\s+are|that\s+you)\b",
        r"\b(?:i\s+want\s+you\s+to|you\s+(?:must|should|will|shall))\s+(?:act|be|become|play|pretend)\b",
        r"\b(?:du\s+bist\s+(?:jetzt|nun|ab\s+jetzt)|jetzt\s+bist\s+du|ab\s+(?:jetzt|sofort)\s+bist\s+du|"
        r"tu\s+so,?\s+als|stell\s+dir\s+vor,?\s+du\s+bist|als\s+\w+(?:\s+\w+)?\s+(?:fungieren|agieren|auftreten))\b",
        r"\b(?:sie\s+sind\s+(?:jetzt|nun)|ich\s+möchte,?\s+dass\s+(?:sie|du)\b)",
        r"\bi\s+(?:want|need|would\s+like)\s+you\s+to\s+(?:act|be|play|pretend|only|reply|respond|answer|"
        r"write|say|output|ignore|forget|become|behave|imagine|generate)\b",
        r"\b(?:tu\s+es|vous\s+êtes)\s+(?:maintenant|désormais)\b",
        # "You are <Name>." addressed to the model: a persona by name (a capital, case kept).
        r"⟪start⟫(?:(?:ok(?:ay)?|now|nun|jetzt)\W+)?(?:you\s+are|du\s+bist|bist\s+du)\s+"
        r"(?:the\s+|der\s+|die\s+|das\s+)?(?-i:[A-Z])\w+",
        r"\b(?:musst|sollst)\s+du\s+(?:auch\s+)?(?:so|wie)\s+\w+",
        r"\b(?:answer|respond|reply|speak|talk|write|antworte|antworten\s+sie|beantworte)\b.{0,30}"
        r"\b(?:in\s+the\s+style\s+of|im\s+stil(?:e)?\s+(?:eines|einer|von))\b",
    ],
    # Pull out the model's prompt or secrets.
    "exfiltrate": [
        r"\b(?:show|reveal|print|tell|give|output|repeat|display|list|write|share|leak|dump)\b.{0,30}?"
        r"\b(?:your|the|all|initial|original|hidden|secret)\s+(?:system\s+|initial\s+|original\s+|hidden\s+)?"
        r"(?:prompts?|instructions|rules|prompt\s+texts?|password|secret|guidelines|configuration)\b",
        r"\bsystem\s*prompt\b",
        r"\b(?:what\s+is\s+written|was\s+steht)\s+(?:above|oben|davor)\b",
        r"\binformation\s+in\s+the\s+prompt\b",
        r"\b(?:zeig|zeige|nenne|gib|verrate)\w*\b.{0,30}\b(?:prompt|anweisungen|passwort|geheim)",
    ],
    # Force a given output.
    "force": [
        # An order to produce given words: the verb in command position (a sentence's start, or
        # after "and", "then", "now", "just"), not "Answer: ..." or "the answer: ..." in a document.
        r"(?:⟪start⟫|\b(?:and|then|now|just|simply|only|please)\s+)(?:say|write|print|output|"
        r"repeat\s+after\s+me)\b[^.?!]{0,25}(?::|\"|“|„|'|\bexactly\b|\bwith\s+(?:only|just)\b)",
        r"(?:⟪start⟫|\b(?:and|then|now|just|simply|only|please)\s+)(?:reply|respond|answer|return)\b[^.?!:]{1,25}"
        r"(?:\"|“|„|'|\bexactly\b|\bwith\s+(?:only|just)\b)",
        r"\b(?:stop|halt|end)\b\s*[:\-–—!,.]+\s*(?:write|say|print|answer|now)\b",
        r"^(?:please\s+)?(?:now\s+)?(?:respond|reply|answer|output|print|say|repeat|reveal)\b[^.!?]{0,40}"
        r"\b(?:only|exactly|verbatim|word\s+for\s+word)\b",
        r"\b(?:only|just|solely)\s+(?:reply|respond|answer|output|write|say|print)\s+(?:with|in|using|by)\b",
        r"\byou\s+(?:will|must|should|shall)\s+(?:only\s+)?(?:reply|respond|answer|output|say|write)\b",
        r"\bmy\s+first\s+(?:request|command|sentence|task|question|prompt|instruction)\s+is\b",
        r"\b(?:answer|respond|reply)\s+(?:to\s+)?(?:every|all|each|any)\s+(?:further\s+)?(?:questions?|requests?|"
        r"quer(?:y|ies)|messages?|prompts?)\s+(?:with|by)\b",
        r"\b(?:attention|achtung|warning)\b\s*[:\-–—!,.]+\s*(?:stop|stopp|halt)\b",
        r"⟪start⟫(?:state|claim|assert|declare|behaupte|erkläre)\s+(?:that|dass)\b",
        r"\binclude\s+that\b.{0,60}\b(?:in\s+your\s+(?:answer|response|reply))\b",
        r"\bmake\s+(?:something|stuff|it|things)\s+up\b",
        r"\b(?:formulate|write|create|invent)\b.{0,30}\b(?:untrue|false|fake|made-up)\b",
        r"\b(?:sag|sage|sagen\s+sie|schreib|schreibe|schreiben\s+sie|antworte|antworten\s+sie|gib)\b[^.?!]{0,25}"
        r"(?::|\"|“|„|')",
        r"\b(?:dites|écrivez|dis|écris|di|escribe|responde)\b[^.?!]{0,25}(?::|\"|“|„|')",
        r"\b(?:generate|create|write)\b.{0,30}\b(?:code|statement|headline|tweet|text)\b.{0,40}[\"“„'].+[\"”“']",
        r"\b(?:formuliere|erstelle|generieren\s+sie|schreibe)\b.{0,40}\b(?:unwahre|falsche|gefälschte)\b",
    ],
    # Frame a new task, or pivot away from the one at hand.
    "pivot": [
        r"\b(?:new|next|real|actual|different|another|further)\s+(?:task|instructions?|assignment|mission|"
        r"challenge)s?\b",
        r"\b(?:neue|nächste|eigentliche|weitere|andere)n?\s+(?:aufgabe|anweisung|anweisungen|mission|"
        r"herausforderung)(?:en)?\b",
        r"⟪start⟫(?:that\s+is|that's|that\s+was|this\s+is|das\s+ist|das\s+war|das\s+genügt|das\s+reicht)\s+"
        r"(?:enough|done|ok|okay|erledigt|genug|schon\s+mal\s+ok)\b",
        r"\bnow\s+(?:focus|concentrate|move\s+on|let'?s\s+(?:do|move)|do\s+the\s+following)\b",
        r"\b(?:but|and)\s+then,?\s+(?:forget|ignore|tell|say|write)\b",
        r"\b(?:well\s+done|great\s+job|fantastic|excellent|perfect|super|gut\s+gemacht|toll|prima)\b.{0,40}"
        r"\b(?:now|next|jetzt|nun|but|aber)\b",
        r"\b(?:jetzt|nun)\s+kommen\b.{0,30}\baufgaben\b",
        r"\b(?:instead|stattdessen|vielmehr)\b.{0,30}\b(?:say|write|tell|sag|schreib|antworte)\w*",
        r"\b(?:hör|hoer|hört)\s+(?:mal\s+)?(?:her|zu)\b",
    ],
    # Forge the prompt's own structure: context and question blocks, few-shot pairs, role tags.
    "forge": [
        r"\b(?:context|kontext|document\s+context|artikel|article)\b\s*[:{\"“„].{0,300}\b(?:question|frage)\b",
        r"\b(?:input|eingabe)\s*:.{0,60}\b(?:output|ausgabe)\s*:",
        # Chat-role lines (an FAQ's "Question:" and "Answer:" lines are left to the prompt's
        # escaped source blocks: documents have them for good reasons).
        r"⟪line⟫(?:system|assistant|user)\s*:\s.{0,200}(?:^|\n|\s)(?:system|assistant|user)\s*:",
        r"<\s*/?\s*(?:system|source|sources|context|instructions?|document)\s*>",
        r"\[/?(?:INST|SYS)\]|<<\s*SYS\s*>>|<\|im_(?:start|end)\|>",
    ],
    # Name a jailbreak or a world without rules.
    "jailbreak": [
        # The names of jailbreaks, not the words around them ("an unfiltered list" is a request).
        r"\b(?:(?-i:DAN)|developer\s+mode|god\s+mode|jailbr(?:oken|eak\s+mode)|do\s+anything\s+now)\b",
        r"\b(?:no|without|free\s+of|ignore)\s+(?:any\s+)?(?:restrictions|limits|filters|censorship|rules|"
        r"guidelines|ethics|morals)\b",
        r"\b(?:hypothetical|theoretical|fictional|imaginary)\s+(?:world|scenario|universe)\b.{0,60}\b(?:you|du|sie)\b",
        r"\b(?:ohne|keine)\s+(?:einschränkungen|regeln|zensur|filter|grenzen)\b",
    ],
}
# Two markers stand for where a sentence or a line starts, because that depends on what the
# pattern is run over. On a sentence (`_COMPILED`, `_ANY`) they are anchors. On a whole text (the
# screens below) they may match at any sentence's start, but only from the start of a run of
# non-word characters or whitespace: a pattern that may begin at every position inside such a
# run re-reads the rest of the run from each, which is quadratic in the run's length.
_MARKERS = {
    "sentence": {"⟪start⟫": r"^\W*", "⟪line⟫": r"(?:^|\n)[^\S\n]*"},
    "text": {"⟪start⟫": r"(?<!\W)\W*", "⟪line⟫": r"(?<!\s)\s*"},
    "automaton": {"⟪start⟫": "", "⟪line⟫": ""},  # RE2 is linear whatever the pattern; it has no lookbehind
}


def _source(pattern: str, reading: str) -> str:
    for marker, replacement in _MARKERS[reading].items():
        pattern = pattern.replace(marker, replacement)
    # On a whole text, a sentence's other `^`s are dropped: what follows them is a word.
    return pattern if reading == "sentence" else _ANCHOR.sub("", pattern)


def _union(reading: str, patterns: list[str]) -> str:
    return "|".join(f"(?:{_source(p, reading)})" for p in patterns)


_ANCHOR = re.compile(r"(?<!\[)\^")
_COMPILED = {name: re.compile(_union("sentence", patterns), _I) for name, patterns in FAMILIES.items()}
_EVERY = [p for patterns in FAMILIES.values() for p in patterns]
# One pass over a sentence says whether any family could match: most sentences stop here.
_ANY = re.compile(_union("sentence", _EVERY), _I)
# One search over a whole text before its sentences and pairs are scored one by one: the
# families' patterns as they read a whole text, over the text with each run of whitespace made one
# space. Every sentence and pair `check` scores is a piece of that text, and each pattern matches
# the text wherever it matched a sentence of it, so a text the screen finds nothing in has no
# sentence that scores. Most chunks are such texts: a third of a chunk's ingest CPU went to
# searching its sentences and pairs.
_SCREEN = re.compile(_union("text", _EVERY), _I)
# The same screen as one automaton (RE2): linear in the text, 0.05 ms for an abstract where
# Python's engine, trying seventy alternatives at every position, takes 3. It reads ASCII text
# only: there its \b, \w and case folding are Python's, and the screened text's whitespace is
# single spaces. Any other text goes to `_SCREEN`. Its DFA gets the memory this union needs
# (with RE2's default it falls back to a slower engine, and says so on stderr).


def _re2_options() -> re2.Options:
    options = re2.Options()
    options.case_sensitive = False
    options.max_mem = 32 << 20
    return options


_SCREEN_ASCII = re2.compile(_union("automaton", _EVERY), _re2_options())
_SPACES = re.compile(r"\s+")
_SENTENCE = re.compile(r"(?<=[.!?;:])\s+|\n+")


@dataclass(frozen=True, kw_only=True)
class Verdict:
    flagged: bool
    score: float
    families: list[str] = field(default_factory=list)  # the rules that matched, in the best sentence
    sentence: str = ""  # the sentence that scored highest


@dataclass(frozen=True, kw_only=True)
class Weights:
    families: dict[str, float]
    pair_bonus: float  # two families in one sentence: an injection's signature
    threshold: float

    @staticmethod
    def load(path: Path = FITTED) -> Weights:
        data = json.loads(path.read_text())
        return Weights(families=data["families"], pair_bonus=data["pair_bonus"], threshold=data["threshold"])


def families_of(sentence: str) -> list[str]:
    if _ANY.search(sentence) is None:
        return []
    return [name for name, pattern in _COMPILED.items() if pattern.search(sentence)]


def sentences(text: str) -> list[str]:
    return _split(normalize(text))


def _screened(text: str) -> bool:
    """Whether some family's pattern, unanchored, matches somewhere in `text`."""
    screen = _SCREEN_ASCII if text.isascii() else _SCREEN
    return screen.search(text) is not None


def _split(whole: str) -> list[str]:
    parts = [s.strip() for s in _SENTENCE.split(whole) if s.strip()]
    # A move split across two short sentences ("Forget everything. Now say ...") still counts.
    pairs = [f"{a} {b}" for a, b in itertools.pairwise(parts)]
    return [*parts, *pairs] or [whole]


class InjectionDetector:
    def __init__(self, weights: Weights, classifier: LocalClassifier | None = None) -> None:
        self.weights = weights
        self.classifier = classifier

    def score_sentence(self, sentence: str) -> tuple[float, list[str]]:
        found = families_of(sentence)
        w = self.weights
        score = sum(w.families.get(f, 0.0) for f in found) + (w.pair_bonus if len(found) >= 2 else 0.0)
        return score, found

    def check(self, text: str) -> Verdict:
        best: tuple[float, list[str], str] = (0.0, [], "")
        readings = [text, *decoded(normalize(text))]
        for reading in readings:
            whole = normalize(reading)
            if not _screened(_SPACES.sub(" ", whole)):
                continue  # no sentence of it can score (see _SCREEN)
            for sentence in _split(whole):
                score, found = self.score_sentence(sentence)
                if score > best[0]:
                    best = (score, found, sentence)
        score, found, sentence = best
        flagged = score >= self.weights.threshold
        if not flagged and self.classifier is not None and self.classifier.flags(text):
            flagged, found = True, [*found, "classifier"]
        return Verdict(flagged=flagged, score=round(score, 4), families=found, sentence=sentence)


@lru_cache(maxsize=1)
def shipped() -> InjectionDetector:
    """The fitted rules, with the operator's local classifier when one is configured."""
    s = get_settings()
    model = LocalClassifier(s.injection_model, s.injection_model_threshold) if s.injection_model else None
    return InjectionDetector(Weights.load(), model)
