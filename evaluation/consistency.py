"""Did an answer read one index only? The check behind `mixed_answers` (bench-migrate, tests).

A query's candidates are kept in its Redis state with the embedding version of the point each
came from; the answer records the version its retrieval used. An answer is mixed when any
candidate came from another index than the one the answer names, or when it cites a document
version none of its candidates holds (its context came from elsewhere).
"""

from __future__ import annotations

from collections.abc import Iterable

import redis

from contracts.query import QueryOutput
from stores.keys import query_candidates_key
from stores.query_state import all_candidates


def mixed(r: redis.Redis, tenant: str, request_id: str, out: QueryOutput) -> str:
    """Why the answer mixes indexes; "" when it read one (or found nothing to read)."""
    return mixed_reads(r, tenant, request_id, out.embedding_version, [(c.doc_id, c.version) for c in out.citations])


def mixed_reads(
    r: redis.Redis, tenant: str, request_id: str, embedding_version: str, cited: Iterable[tuple[str, str]]
) -> str:
    """`mixed` for an answer read off the wire: its embedding version and cited (doc id, version)s."""
    raw: dict[str, str] = r.hgetall(query_candidates_key(tenant, request_id))  # type: ignore[assignment]
    candidates = all_candidates(raw)
    cited = list(cited)
    if not candidates and cited:
        return "cites documents but recorded no candidates (its state is gone: it cannot be checked)"
    versions = {c["embedding_version"] for c in candidates}
    if versions - {embedding_version}:
        return f"answer says {embedding_version!r}, candidates came from {sorted(versions)}"
    held = {(c["doc_id"], c["version"]) for c in candidates}
    stray = [pair for pair in cited if pair not in held]
    if stray:
        return f"cites {len(stray)} document versions no candidate of its index holds"
    return ""
