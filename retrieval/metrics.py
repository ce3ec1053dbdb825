"""nDCG@k, Recall@k and MRR@k over document ids (BEIR's definitions; graded gains, log2 discount)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def dedupe(ranked: Sequence[str]) -> list[str]:
    """Chunk hits -> document ranking: each document at the rank of its best chunk."""
    seen: set[str] = set()
    out = []
    for d in ranked:
        if d not in seen:
            seen.add(d)
            out.append(d)
    return out


def ndcg(ranked: Sequence[str], rels: dict[str, int], k: int) -> float:
    dcg = sum(rels.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(rels.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall(ranked: Sequence[str], rels: dict[str, int], k: int) -> float:
    relevant = {d for d, g in rels.items() if g > 0}
    return len(relevant & set(ranked[:k])) / len(relevant) if relevant else 0.0


def mrr(ranked: Sequence[str], rels: dict[str, int], k: int) -> float:
    for i, d in enumerate(ranked[:k]):
        if rels.get(d, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def summarise(runs: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    """Mean metrics over the judged queries (a query with no run counts as zero)."""
    n = len(qrels)
    totals = {"ndcg@10": 0.0, "recall@10": 0.0, "recall@100": 0.0, "mrr@10": 0.0, "all@10": 0.0}
    for qid, rels in qrels.items():
        ranked = dedupe(runs.get(qid, []))
        totals["ndcg@10"] += ndcg(ranked, rels, 10)
        totals["recall@10"] += recall(ranked, rels, 10)
        totals["recall@100"] += recall(ranked, rels, 100)
        totals["mrr@10"] += mrr(ranked, rels, 10)
        totals["all@10"] += float(recall(ranked, rels, 10) == 1.0)  # every relevant one (multi-hop: both)
    return {k: v / n for k, v in totals.items()} if n else totals
