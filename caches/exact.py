"""The exact answer cache: the same question, in the same scope, answered at the edge.

The scope is everything an answer depends on besides the question and the index: the tenant, the
caller's effective access groups, the request's options and the answering configuration (prompts,
routes, providers, fusion: `app.query.answer_config`). Its digest is an HMAC under a server
secret, and an entry's digest hashes it with the question folded by `caches.question.exact_key`,
so no question is stored readable. Storage, invalidation and the checks at lookup are the
entries' (`caches.entries`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from typing import Any

import redis

from caches.entries import Entries, entry_digest
from keel.tenancy import reader_groups


class ExactCache(Entries):
    def __init__(self, r: redis.Redis, secret: bytes, *, ttl_s: float, max_entries: int) -> None:
        super().__init__(r, "exact", ttl_s=ttl_s, max_entries=max_entries)
        self.secret = secret

    def scope(self, tenant: str, groups: Sequence[str], options: dict[str, Any]) -> str:
        """The scope's digest: what the semantic layer searches within, and half of an exact key."""
        material = json.dumps([tenant, sorted(reader_groups(groups)), options], sort_keys=True, separators=(",", ":"))
        return hmac.new(self.secret, material.encode(), hashlib.sha256).hexdigest()

    def digest(self, tenant: str, groups: Sequence[str], options: dict[str, Any], question: str) -> str:
        """The question's exact entry in that scope."""
        return entry_digest(self.scope(tenant, groups, options), question)
