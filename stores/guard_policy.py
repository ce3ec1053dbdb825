"""Each tenant's guardrail policy: what a flagged question or source chunk may do.

A hash per tenant (`keel:guard:<tenant>`) overrides the process defaults (`Settings.guard_*`):
`questions` (flag: answer and record it; refuse: a 400 `prompt_injection`) and `sources` (quote:
a flagged chunk is a source, its instruction-like sentences are not shown to the model; exclude:
flagged chunks are not retrieved; allow: used as they are, recorded), `moderation` and `severe`
(unsafe content in a question or an answer: allow, flag, or refuse with a safe message), and
`grounding` (a model's answer with unsupported claims: flag, retry, extractive), and `pii`: per
entity type found in documents and questions, pseudonymise (a keyed token the edge turns back into
the name), redact (a placeholder) or keep (stored as written), as `pii:<ENTITY>` fields; a type
not named is pseudonymised. Read on every query through
a cache of a few seconds, so a change takes effect within GUARD_POLICY_TTL_S everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import redis

from keel.config import Settings
from stores.keys import guard_key
from stores.recent import Recent

QUESTION_ACTIONS = ("flag", "refuse")
SOURCE_ACTIONS = ("quote", "exclude", "allow")
MODERATION_ACTIONS = ("allow", "flag", "refuse")
GROUNDING_ACTIONS = ("flag", "retry", "extractive")
PII_ACTIONS = ("pseudonymise", "redact", "keep")
FIELDS = ("questions", "sources", "moderation", "severe", "grounding")
PII_FIELD = "pii:"
GUARD_POLICY_TTL_S = 5.0


@dataclass(frozen=True, kw_only=True)
class GuardPolicy:
    questions: str = "flag"
    sources: str = "quote"
    # Unsafe content in a question or an answer (guardrails.moderation): `moderation` for the
    # categories, `severe` for their severe forms (sexual/minors, hate/threatening, violence/graphic).
    moderation: str = "flag"
    severe: str = "refuse"
    # A model's answer with claims no passage supports (generation.grounding): flag it and return
    # it, retry once with a stricter prompt, or give the extractive answer instead.
    grounding: str = "flag"
    # What ingestion and the edge do with each entity type they find (pseudonymise, redact, keep),
    # as sorted (entity, action) pairs; a type not named is pseudonymised.
    pii: tuple[tuple[str, str], ...] = ()

    def pii_actions(self) -> dict[str, str]:
        return dict(self.pii)

    def check(self) -> GuardPolicy:
        if self.questions not in QUESTION_ACTIONS:
            raise ValueError(f"questions: {self.questions!r} is not one of {', '.join(QUESTION_ACTIONS)}")
        if self.sources not in SOURCE_ACTIONS:
            raise ValueError(f"sources: {self.sources!r} is not one of {', '.join(SOURCE_ACTIONS)}")
        for name in ("moderation", "severe"):
            if getattr(self, name) not in MODERATION_ACTIONS:
                raise ValueError(f"{name}: {getattr(self, name)!r} is not one of {', '.join(MODERATION_ACTIONS)}")
        if self.grounding not in GROUNDING_ACTIONS:
            raise ValueError(f"grounding: {self.grounding!r} is not one of {', '.join(GROUNDING_ACTIONS)}")
        for entity, action in self.pii:
            if action not in PII_ACTIONS:
                raise ValueError(f"pii {entity}: {action!r} is not one of {', '.join(PII_ACTIONS)}")
        return self


_recent: Recent[GuardPolicy] = Recent(GUARD_POLICY_TTL_S)


def defaults(settings: Settings) -> GuardPolicy:
    """The process's defaults (`Settings.guard_*`), which a tenant's fields override. Every reader
    passes these: the cache keeps one policy per tenant, whichever reader loaded it."""
    return GuardPolicy(
        questions=settings.guard_questions,
        sources=settings.guard_sources,
        moderation=settings.guard_moderation,
        severe=settings.guard_severe,
        grounding=settings.guard_grounding,
    )


def read(r: redis.Redis, tenant: str, default: GuardPolicy) -> GuardPolicy:
    """The tenant's policy (its overrides on `default`), at most GUARD_POLICY_TTL_S old."""

    def load() -> GuardPolicy:
        stored = {str(k): str(v) for k, v in r.hgetall(guard_key(tenant)).items()}
        fields = {k: v for k, v in stored.items() if k in FIELDS}
        pii = {
            **default.pii_actions(),
            **{k[len(PII_FIELD) :]: v for k, v in stored.items() if k.startswith(PII_FIELD)},
        }
        return replace(default, **fields, pii=tuple(sorted(pii.items())))

    return _recent.get(r, tenant, load)


def write(
    r: redis.Redis, tenant: str, default: GuardPolicy, *, pii: Mapping[str, str] | None = None, **changes: str
) -> GuardPolicy:
    """Set some of the tenant's policy (`pii`: actions for the entity types named, the others kept);
    returns the whole policy now in force."""
    current = read(r, tenant, default)
    actions = {**current.pii_actions(), **(pii or {})}
    policy = replace(current, **changes, pii=tuple(sorted(actions.items()))).check()
    stored = [(k, str(getattr(policy, k))) for k in FIELDS] + [(f"{PII_FIELD}{e}", a) for e, a in policy.pii]
    r.hset(guard_key(tenant), mapping={k: v for k, v in stored})
    _recent.forget(r, tenant)
    return policy
