"""Each tenant's guardrail policy: what a flagged question or source chunk may do.

A hash per tenant (`keel:guard:<tenant>`) overrides the process defaults (`Settings.guard_*`):
`questions` (flag: answer and record it; refuse: a 400 `prompt_injection`) and `sources` (quote:
a flagged chunk is a source, its instruction-like sentences are not shown to the model; exclude:
flagged chunks are not retrieved; allow: used as they are, recorded), `moderation` and `severe`
(unsafe content in a question or an answer: allow, flag, or refuse with a safe message), and
`grounding` (a model's answer with unsupported claims: flag, retry, extractive). Read on every query through
a cache of a few seconds, so a change takes effect within GUARD_POLICY_TTL_S everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import redis

from stores.keys import guard_key
from stores.recent import Recent

QUESTION_ACTIONS = ("flag", "refuse")
SOURCE_ACTIONS = ("quote", "exclude", "allow")
MODERATION_ACTIONS = ("allow", "flag", "refuse")
GROUNDING_ACTIONS = ("flag", "retry", "extractive")
FIELDS = ("questions", "sources", "moderation", "severe", "grounding")
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
        return self


_recent: Recent[GuardPolicy] = Recent(GUARD_POLICY_TTL_S)


def read(r: redis.Redis, tenant: str, default: GuardPolicy) -> GuardPolicy:
    """The tenant's policy (its overrides on `default`), at most GUARD_POLICY_TTL_S old."""

    def load() -> GuardPolicy:
        fields = {k: str(v) for k, v in r.hgetall(guard_key(tenant)).items() if k in FIELDS}
        return replace(default, **fields)

    return _recent.get(r, tenant, load)


def write(r: redis.Redis, tenant: str, default: GuardPolicy, **changes: str) -> GuardPolicy:
    """Set some of the tenant's policy; returns the whole policy now in force."""
    current = read(r, tenant, default)
    policy = replace(current, **changes).check()
    r.hset(guard_key(tenant), mapping={k: getattr(policy, k) for k in FIELDS})
    _recent.forget(r, tenant)
    return policy
