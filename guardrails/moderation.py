"""Moderation of questions and answers: sexual, hate, harassment, self-harm and violence content,
and their severe forms (sexual/minors, hate/threatening, violence/graphic). Offline, on the CPU.

Each category has a lexicon of weighted patterns (words and short phrases, stems where a word
takes endings) and a few rules that need two things together (a threat and a target, a minor and
a sexual term, a method and a self-reference). A text's score for a category is the sum of its
matched weights, squashed to 0..1; the category is flagged at its threshold. The thresholds are
fitted by `python -m bench.tune_guard --moderation` on half of the development set under a
false-positive constraint (`guardrails/moderation.json`). An optional local classifier
(`KEEL_MODERATION_MODEL`, `guardrails.classifier`) flags a text as `unsafe` on its own when its
probability clears `KEEL_MODERATION_MODEL_THRESHOLD`; none ships.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from guardrails.classifier import LocalClassifier
from guardrails.normalize import normalize
from keel.config import get_settings

FITTED = Path(__file__).with_name("moderation.json")
CATEGORIES = (
    "sexual",
    "sexual/minors",
    "hate",
    "hate/threatening",
    "harassment",
    "self-harm",
    "violence",
    "violence/graphic",
)
SEVERE = ("sexual/minors", "hate/threatening", "violence/graphic")

_I = re.IGNORECASE | re.UNICODE
_SEXUAL = (
    r"\b(?:sex(?:ual(?:ly)?)?|porn\w*|nude\w*|naked|orgasm\w*|erotic\w*|horny|aroused|masturbat\w*|"
    r"blow\s?jobs?|handjobs?|cum(?:ming|shot)?|sperm|ejaculat\w*|genital\w*|penis\w*|vagina\w*|pussy|pussies|"
    r"cocks?|dicks?|tits|boobs?|breasts?|nipples?|clit\w*|anal|dildo\w*|fuck(?:ed|ing|s)?|"
    r"intercourse|fetish\w*|bdsm|kinky|slutty|sluts?|whores?|hookers?|escorts?|stripper\w*|threesome\w*|"
    r"hentai|nsfw|onlyfans|camgirls?|sexting|lingerie|thrust\w*|moan\w*|lick\w*|suck\w*|"
    r"seduc\w*|foreplay|condoms?|virgin\w*|rape\w*|molest\w*)\b"
)
_MINOR = (
    r"\b(?:child(?:ren)?|kids?|minors?|underage|under-age|teen\w*|preteen\w*|little\s+(?:girls?|boys?)|"
    r"young\s+(?:girls?|boys?)|schoolgirls?|schoolboys?|loli\w*|shota\w*|pedo\w*|paedo\w*|"
    r"(?:1[0-7]|[5-9])\s*(?:yo|y/o|years?\s+old)|daughter|son|niece|nephew|stepdaughter|stepson|"
    r"babysit\w*|high\s+school(?:er)?s?|middle\s+school\w*)\b"
)
_GROUP = (
    r"\b(?:blacks?|whites?|jews?|jewish|muslims?|islam\w*|christians?|arabs?|asians?|chinese|mexicans?|"
    r"africans?|immigrants?|migrants?|refugees?|gays?|lesbians?|homosexuals?|trans(?:gender)?s?|"
    r"queers?|women|females?|feminists?|men|hindus?|sikhs?|gypsies|roma|latinos?|hispanics?|"
    r"indians?|natives?|negro\w*|disabled|retards?|liberals?|conservatives?)\b"
)
_SLUR = (
    r"\b(?:nigg\w*|n[i1]gg\w*|fag\w*|f[a@]gg\w*|dykes?|trann\w*|kikes?|spics?|chink\w*|gooks?|wetbacks?|"
    r"blackies|musloid\w*|muzz(?:ie|y|rat)s?|bitches|hoes|"
    r"towelheads?|sand\s?n\w*|raghead\w*|coons?|jungle\s?bunn\w*|porch\s?monkey\w*|beaners?|"
    r"paki\w*|retard\w*|subhuman\w*|untermensch\w*|savages?|vermin|cockroach\w*|"
    r"mongrel\w*|half-?breeds?)\b"
)
_HATE_CLAIM = (
    r"\b(?:should\s+(?:all\s+)?(?:die|be\s+(?:killed|shot|gassed|exterminated|deported|hanged|wiped\s+out))|"
    r"(?:are|is)\s+(?:all\s+)?(?:animals|scum|filth|disgusting|inferior|evil|a\s+disease|parasites|"
    r"criminals|rapists|terrorists|trash|garbage|subhuman)|go\s+back\s+to\s+(?:your|their)\s+(?:country|"
    r"countries)|master\s+race|white\s+(?:power|supremac\w*|genocide)|ethnic\s+cleansing|final\s+solution|"
    r"gas\s+the|heil\s+hitler|14\s?88|race\s+war|hate\s+(?:all\s+)?(?:the\s+)?\w+s\b|"
    r"(?:get|go|send\s+\w+)\s+(?:\w+\s+)?(?:out\s+of|back\s+to)\s+(?:our|my|the|this|your|their|his)?\s*"
    r"(?:land|country|countries|nation|africa|mexico|china|israel|europe|america|asia|india|home\s+country)|"
    r"must\s+(?:all\s+)?(?:go\s+back|leave|be\s+deported|be\s+removed)|"
    r"like\s+(?:a|an)\s+(?:\w+\s+)?(?:animal|beast|dog|rat|pig|ape|monkey|vermin|insect)s?|"
    r"all\s+(?:\w+\s+)?(?:bitches|hoes|women|men|blacks|whites|jews|muslims|immigrants|gays|arabs)\s+"
    r"(?:are|cheat|think|should|must|need|deserve)\b)"
)
_THREAT = (
    r"\b(?:i(?:'ll|\s+will|'m\s+going\s+to|\s+am\s+going\s+to|\s+want\s+to|\s+wanna)\s+(?:kill|murder|shoot|"
    r"stab|hurt|beat|rape|strangle|choke|burn|bomb|find)|(?:kill|shoot|stab|hang|lynch|burn|gas|exterminate|"
    r"slaughter|behead)\s+(?:them|all|every|those|these|you|him|her)|(?:should|deserve\s+to|ought\s+to)\s+"
    r"(?:die|be\s+killed|be\s+shot|hang)|death\s+to|watch\s+your\s+back|you(?:'re|\s+are)\s+(?:dead|going\s+to\s+die))\b"
)
_INSULT = (
    r"\b(?:idiot\w*|stupid|moron\w*|dumb\w*|loser\w*|pathetic|worthless|ugly|fat\s+\w+|bitch\w*|bastard\w*|"
    r"asshole\w*|dickhead\w*|cunt\w*|twat\w*|prick\w*|jerk\w*|shut\s+(?:the\s+fuck\s+)?up|scumbag\w*|"
    r"piece\s+of\s+(?:shit|crap|garbage)|go\s+(?:to\s+hell|die|fuck\s+yourself)|fuck\s+(?:you|off)|"
    r"kill\s+yourself|kys|nobody\s+(?:likes|loves|cares\s+about)\s+you|you\s+(?:suck|disgust\s+me)|"
    r"retard\w*|clown\w*|troll\w*|hypocrit\w*|liar\w*|coward\w*|imbecile\w*|cretin\w*)\b"
)
_YOU = r"\b(?:you|your|you're|u|ur|yourself)\b"
_SELF_HARM = (
    r"\b(?:suicid\w*|kill(?:ing)?\s+myself|end(?:ing)?\s+(?:my|it)\s+(?:life|all)|self[\s-]?harm\w*|"
    r"cut(?:ting)?\s+(?:myself|my\s+(?:wrists?|arms?|legs?))|want\s+to\s+die|wish\s+i\s+(?:was|were)\s+dead|"
    r"overdos\w*|slit\s+(?:my\s+)?wrists?|hang(?:ing)?\s+myself|no\s+reason\s+to\s+live|"
    r"better\s+off\s+dead|starv(?:e|ing)\s+myself|purg(?:e|ing)|anorexi\w*|bulimi\w*|pro[\s-]?ana|thinspo\w*|"
    r"self[\s-]?destruct\w*|jump\s+off\s+(?:a|the)\s+(?:bridge|building|roof)|razor\s+blades?|"
    r"don'?t\s+want\s+to\s+(?:live|be\s+alive|wake\s+up))\b"
)
_VIOLENCE = (
    r"\b(?:kill\w*|murder\w*|shoot\w*|shot|stab\w*|gun\w*|weapons?|bomb\w*|explosi\w*|attack\w*|assault\w*|"
    r"beat(?:ing|en)?\s+(?:up|him|her|them|to\s+death)|punch\w*|strangl\w*|chok(?:e|ing)|tortur\w*|"
    r"massacre\w*|slaughter\w*|execut\w*|behead\w*|lynch\w*|genocide|terror\w*|hostage\w*|kidnap\w*|"
    r"blood\w*|violen\w*|war\b|fight\w*|revenge|hurt\w*|maim\w*|mutilat\w*|dismember\w*|corpse\w*|"
    r"burn\w*\s+(?:alive|down)|shooting|gunm[ae]n|rifle\w*|knife|knives|machete\w*|grenade\w*)\b"
)
_GRAPHIC = (
    r"\b(?:gore|gory|guts|entrails|intestines|brains?\s+(?:splatter\w*|blown\s+out)|blood\s+(?:everywhere|"
    r"spurt\w*|gush\w*|pool\w*)|decapitat\w*|dismember\w*|mutilat\w*|disembowel\w*|flay\w*|skinned\s+alive|"
    r"eyes?\s+gouged|severed\s+(?:head|limbs?|arms?|legs?)|rotting\s+(?:corpse|flesh|body)|maggots|"
    r"torn\s+(?:apart|limb)|crushed\s+skull|bones?\s+(?:snap\w*|crack\w*|broke\w*))\b"
)
PATTERNS: dict[str, list[tuple[str, float]]] = {
    "sexual": [(_SEXUAL, 1.0)],
    "hate": [(_SLUR, 2.0), (_HATE_CLAIM, 2.0), (_GROUP, 0.2)],
    "harassment": [(_INSULT, 1.0), (_THREAT, 1.5)],
    "self-harm": [(_SELF_HARM, 2.0)],
    "violence": [(_VIOLENCE, 0.8), (_THREAT, 2.0)],
    "violence/graphic": [(_GRAPHIC, 2.0)],
}
_COMPILED = {c: [(re.compile(p, _I), w) for p, w in pats] for c, pats in PATTERNS.items()}
_YOU_RE = re.compile(_YOU, _I)
_MINOR_RE = re.compile(_MINOR, _I)
_GROUP_RE = re.compile(_GROUP, _I)
_THREAT_RE = re.compile(_THREAT, _I)
_VIOLENCE_RE = re.compile(_VIOLENCE, _I)


@dataclass(frozen=True, kw_only=True)
class Moderation:
    flagged: list[str]  # categories over their threshold, severe ones included
    scores: dict[str, float] = field(default_factory=dict)


def raw_scores(text: str) -> dict[str, float]:
    """Each category's matched weight, before squashing (what the thresholds are fitted on)."""
    t = normalize(text)
    counts = {c: sum(w * len(p.findall(t)) for p, w in pats) for c, pats in _COMPILED.items()}
    # Rules that need two things together.
    if counts["harassment"] and _YOU_RE.search(t):
        counts["harassment"] += 1.0  # an insult aimed at the reader
    minors = bool(_MINOR_RE.search(t))
    counts["sexual/minors"] = counts["sexual"] if minors else 0.0
    counts["hate/threatening"] = (counts["hate"] if (_THREAT_RE.search(t) or _VIOLENCE_RE.search(t)) else 0.0) + (
        2.0 if _GROUP_RE.search(t) and _THREAT_RE.search(t) else 0.0
    )
    return counts


def squash(x: float, words: int) -> float:
    """Matched weight per the text's length (a long text mentions things in passing) to 0..1."""
    density = x / math.sqrt(max(words, 1) / 20 + 1)
    return round(1 - math.exp(-density), 4)


@dataclass(frozen=True, kw_only=True)
class Thresholds:
    by_category: dict[str, float]

    @staticmethod
    def load(path: Path = FITTED) -> Thresholds:
        return Thresholds(by_category=json.loads(path.read_text())["thresholds"])


class Moderator:
    def __init__(self, thresholds: Thresholds, classifier: LocalClassifier | None = None) -> None:
        self.thresholds = thresholds
        self.classifier = classifier

    def check(self, text: str) -> Moderation:
        words = len(text.split())
        scores = {c: squash(v, words) for c, v in raw_scores(text).items()}
        flagged = [c for c in CATEGORIES if scores.get(c, 0.0) >= self.thresholds.by_category.get(c, 1.01)]
        if not flagged and self.classifier is not None and self.classifier.flags(text):
            flagged = ["unsafe"]  # the model's verdict has no category of ours
        return Moderation(flagged=flagged, scores=scores)


def actions(flagged: list[str], action: str, severe_action: str) -> dict[str, str]:
    """Each flagged category with what the tenant's policy does with it (allow | flag | refuse):
    `severe_action` for the severe forms, `action` for the rest."""
    return {c: severe_action if c in SEVERE else action for c in flagged}


@lru_cache(maxsize=1)
def shipped() -> Moderator:
    """The fitted lexicons, with the operator's local classifier when one is configured."""
    s = get_settings()
    model = LocalClassifier(s.moderation_model, s.moderation_model_threshold) if s.moderation_model else None
    return Moderator(Thresholds.load(), model)
