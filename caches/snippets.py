"""The snippet cache: what retrieval and re-scoring found for a question, so asking it again
skips both even when the answer has to be generated again (a stream, `"cache": false`, another
answer format).

An entry holds the rankings (point ids and every score, no passage text: the passages are read
back from the index by id on a hit, so no document text is kept in Redis past its request) and
cites every document version they name. It is keyed on the retrieval scope (tenant, the caller's
groups, filters, mode, re-scoring and the answering configuration: an HMAC the edge made), the
redacted question folded, and the tenant's generation, like the answer layers
(`caches.entries`): any publish, replacement or deletion makes it unreachable, and a lookup
checks that each cited version is still published and readable by the caller.

Retrieval keeps its ranking when no re-scoring follows; otherwise the re-scorer keeps both once
it finished in time (a late or failed one keeps nothing, as its order was not used). Either
keeps it on a thread of its own, off the query's time. The
question itself is not stored: only its digest names the entry.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import redis

from caches.entries import Entries, entry_digest
from contracts.query import Candidate, Scored


@dataclass(frozen=True, kw_only=True)
class Snippet:
    retrieved: list[Scored]
    reranked: list[Scored] | None  # None: kept without re-scoring


@dataclass(frozen=True, kw_only=True)
class SnippetKey:
    """Where a request's snippet goes once its rankings are final (kept in the request's state
    between retrieval and re-scoring)."""

    tenant: str
    digest: str
    generation: int
    cited: list[tuple[str, str]]


class SnippetCache(Entries):
    def __init__(self, r: redis.Redis, *, ttl_s: float, max_entries: int) -> None:
        super().__init__(r, "snippet", ttl_s=ttl_s, max_entries=max_entries)

    def find(self, tenant: str, groups: Sequence[str], scope: str, question: str) -> tuple[int, Snippet | None]:
        """The tenant's generation (-1: Redis is down) and the snippet kept for the question."""
        generation, hit = self.lookup(tenant, groups, entry_digest(scope, question))
        if hit is None:
            return generation, None
        reranked = hit.answer.get("reranked")
        return generation, Snippet(
            retrieved=[Scored(**s) for s in hit.answer["retrieved"]],
            reranked=None if reranked is None else [Scored(**s) for s in reranked],
        )

    def keep(self, key: SnippetKey, retrieved: Sequence[Scored], reranked: Sequence[Scored] | None) -> bool:
        rankings = {
            "retrieved": [vars(s) for s in retrieved],
            "reranked": None if reranked is None else [vars(s) for s in reranked],
        }
        return self.put(key.tenant, key.digest, key.generation, "", rankings, cited=key.cited)


def snippet_key(
    tenant: str, scope: str, generation: int, question: str, candidates: dict[str, Candidate]
) -> SnippetKey:
    cited = sorted({(c.doc_id, c.version) for c in candidates.values()})
    return SnippetKey(tenant=tenant, digest=entry_digest(scope, question), generation=generation, cited=cited)


def encode_key(key: SnippetKey) -> str:
    return json.dumps(vars(key))


def decode_key(raw: str) -> SnippetKey:
    data = json.loads(raw)
    return SnippetKey(**{**data, "cited": [tuple(c) for c in data["cited"]]})
