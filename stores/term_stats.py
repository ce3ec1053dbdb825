"""A tenant's BM25 statistics in Redis: chunk count, term count, and per-term chunk counts.

They cover exactly the tenant's published chunks. `index.publish` adds a version's contribution
and subtracts the one it replaces in the same transaction that flips the generation (and a
deletion subtracts in the one that marks the record), and the document record names the version
whose contribution is counted (`bm25_counted`), so a retried publish or deletion never counts
twice. Retrieval reads them per question (`read`); ingestion reads the mean length (`avg_len`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import redis

from stores.keys import term_df_key, term_totals_key

COUNTED_FIELD = "bm25_counted"  # on the document record: the version whose terms are in the stats


@dataclass(frozen=True, kw_only=True)
class TermStats:
    """What BM25 needs of a tenant's index: its chunk count, mean length, and per-term chunk counts."""

    chunks: int = 0
    avg_len: float = 0.0
    df: dict[int, int] = field(default_factory=dict)


@dataclass(kw_only=True)
class Contribution:
    """What one document version's chunks add: chunks, terms, and per term the chunks holding it."""

    chunks: int = 0
    terms: int = 0
    df: Counter[int] = field(default_factory=Counter)

    @staticmethod
    def of(chunks: Iterable[tuple[Sequence[int], int]]) -> Contribution:
        """From (distinct term ids, term count) per chunk."""
        out = Contribution()
        for ids, length in chunks:
            out.chunks += 1
            out.terms += length
            out.df.update(set(ids))
        return out


def apply(pipe: redis.client.Pipeline, tenant: str, contribution: Contribution, sign: int) -> None:
    """Queue the contribution's addition (sign 1) or removal (-1) on a transaction."""
    if contribution.chunks == 0:
        return
    pipe.hincrby(term_totals_key(tenant), "chunks", sign * contribution.chunks)
    pipe.hincrby(term_totals_key(tenant), "terms", sign * contribution.terms)
    df = term_df_key(tenant)
    for term, n in contribution.df.items():
        pipe.hincrby(df, str(term), sign * n)


def read(r: redis.Redis, tenant: str, terms: Sequence[int]) -> TermStats:
    """The statistics a question needs: N, the mean length and its terms' document frequencies."""
    pipe = r.pipeline(transaction=False)
    pipe.hmget(term_totals_key(tenant), ["chunks", "terms"])
    unique = sorted(set(terms))
    if unique:
        pipe.hmget(term_df_key(tenant), [str(t) for t in unique])
    replies = pipe.execute()
    chunks, total = (int(v or 0) for v in replies[0])
    dfs = replies[1] if unique else []
    df = {t: int(v) for t, v in zip(unique, dfs, strict=True) if v is not None and int(v) > 0}
    return TermStats(chunks=chunks, avg_len=total / chunks if chunks else 0.0, df=df)


def avg_len(r: redis.Redis, tenant: str) -> float:
    """The tenant's mean chunk length in terms (0 before anything is published)."""
    chunks, total = (int(v or 0) for v in r.hmget(term_totals_key(tenant), ["chunks", "terms"]))
    return total / chunks if chunks else 0.0
