"""Two indexes of one tenant on a golden set: nDCG@10 and Recall@10/100 of each, side by side.

Each query goes through the retrieval and re-scoring a live query gets, over everything the
tenant has published (the gate is an operator's check, so no access-group filter applies; only
figures leave it). Judged documents are named by source, file name or file stem (the way a BEIR
corpus id names the file it was written to).
"""

from __future__ import annotations

from collections.abc import Sequence

import redis

from contracts.index import GoldenQuery, IndexFigures
from encoders.sparse import SparseEncoder
from index.active import ActiveIndex
from index.catalog import Catalog
from keel.config import Settings
from retrieval.metrics import summarise
from retrieval.rerank import Reranker
from retrieval.retriever import HybridRetriever
from vectorstore.base import Cond, VectorStore, Where


def compare_indexes(
    store: VectorStore,
    sparse: SparseEncoder,
    r: redis.Redis,
    settings: Settings,
    tenant: str,
    golden: Sequence[GoldenQuery],
    indexes: Sequence[ActiveIndex],
    reranker: Reranker,
) -> list[IndexFigures]:
    retriever = HybridRetriever(store, sparse, r)
    generation = Catalog(r).generation(tenant)
    where = Where(
        must=(Cond("tenant", value=tenant), Cond("visible_from", lte=generation), Cond("visible_until", gt=generation))
    )
    qrels = {str(i): dict(q.relevant) for i, q in enumerate(golden)}
    figures = []
    for index in indexes:
        runs: dict[str, list[str]] = {}
        for i, q in enumerate(golden):
            found = retriever.retrieve(
                index, tenant, q.query, where, "hybrid", settings.retrieve_candidates, settings.retrieve_prefetch
            )
            ranked = reranker.rerank(q.query, found.scored, found.candidates, float("inf"))
            runs[str(i)] = [document_name(found.candidates[sc.point_id].source, qrels[str(i)]) for sc in ranked]
        m = summarise(runs, qrels)
        figures.append(
            IndexFigures(
                index=index.name,
                embedding_version=index.version.key,
                queries=len(golden),
                ndcg_at_10=round(m["ndcg@10"], 4),
                recall_at_10=round(m["recall@10"], 4),
                recall_at_100=round(m["recall@100"], 4),
            )
        )
    return figures


def document_name(source: str, relevant: dict[str, int]) -> str:
    """A hit's document as the golden set names it: its source, its file name, or its file stem
    (a BEIR corpus id)."""
    name = source.rsplit("/", 1)[-1]
    for candidate in (source, name):
        if candidate in relevant:
            return candidate
    return name.rsplit(".", 1)[0]
