"""BM25 with the tenant's own statistics: kept exact through publish, replace and delete, and
never moved by another tenant's documents."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import redis
from temporalio.client import Client

from app.delete import delete_document
from contracts.query import QueryFilters
from gateway.keys import INGEST, KeyStore
from index.catalog import Catalog
from index.visibility import visible_at
from keel import ids
from keel.config import Settings
from pipelines.deps import Deps
from retrieval.filters import query_where
from retrieval.retriever import HybridRetriever
from stores import term_stats
from tests.helpers import ingest

pytestmark = [pytest.mark.stack, pytest.mark.usefixtures("worker")]

DOCS = {
    "refunds.md": "# Refunds\n\nRefunds are paid within 30 days of a return. A refund needs the receipt.",
    "shipping.md": "# Shipping\n\nOrders ship in two days. Express shipping costs extra for remote areas.",
    "returns.md": "# Returns\n\nReturn an item unused, with its receipt, and the refund follows.",
}


def _write(folder: Path, docs: dict[str, str]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in docs.items():
        (folder / name).write_text(text)
    return [folder / n for n in docs]


def _ranking(deps: Deps, r: redis.Redis, tenant: str, question: str) -> list[tuple[str, float]]:
    where = query_where(tenant, Catalog(r).generation(tenant), [], QueryFilters())
    found = HybridRetriever(deps.store, deps.sparse, r).retrieve(
        deps.indexes.open(tenant), tenant, question, where, "bm25", 10, 10
    )
    return [(s.point_id, round(s.sparse or 0.0, 6)) for s in found.scored]


def _recount(deps: Deps, r: redis.Redis, tenant: str) -> tuple[int, int, Counter[int]]:
    """The statistics from scratch: every chunk the tenant's readers can see now."""
    visible = visible_at(tenant, Catalog(r).generation(tenant), [])
    lists = deps.store.term_lists(deps.indexes.open(tenant).collection, visible)
    return len(lists), sum(n for _, n in lists), Counter(t for terms, _ in lists for t in set(terms))


def _assert_stats_exact(deps: Deps, r: redis.Redis, tenant: str) -> None:
    chunks, terms, df = _recount(deps, r, tenant)
    stats = term_stats.read(r, tenant, list(df))
    assert (stats.chunks, round(stats.avg_len * stats.chunks)) == (chunks, terms)
    assert stats.df == dict(df)


async def test_statistics_follow_publish_replace_and_delete(
    client: Client, settings: Settings, redis_client: redis.Redis, deps: Deps, tenant: str, tmp_path: Path
) -> None:
    paths = _write(tmp_path / "v1", DOCS)
    counters, _ = await ingest(client, settings, redis_client, paths, tenant)
    assert counters.ingested == 3
    _assert_stats_exact(deps, redis_client, tenant)
    assert term_stats.read(redis_client, tenant, []).chunks == 3

    # Replace one document (new text, same path) and re-run the batch: its old chunks leave.
    (tmp_path / "v1" / "shipping.md").write_text("# Shipping\n\nParcels travel by courier; tracking is e-mailed.")
    await ingest(client, settings, redis_client, paths, tenant)
    _assert_stats_exact(deps, redis_client, tenant)
    ship = deps.sparse.terms("express")
    assert term_stats.read(redis_client, tenant, ship).df == {}  # only the old version had it

    writer = KeyStore(redis_client).create(tenant=tenant, roles=[INGEST])[0].principal()
    await delete_document(client, settings, redis_client, writer, ids.document_id(tenant, str(paths[0])))
    _assert_stats_exact(deps, redis_client, tenant)
    assert term_stats.read(redis_client, tenant, []).chunks == 2


async def test_another_tenants_documents_never_move_a_ranking(
    client: Client, settings: Settings, redis_client: redis.Redis, deps: Deps, tenant: str, tmp_path: Path
) -> None:
    await ingest(client, settings, redis_client, _write(tmp_path / "mine", DOCS), tenant)
    before = _ranking(deps, redis_client, tenant, "refund receipt shipping")
    assert before and all(score > 0 for _, score in before)

    # Another tenant floods the same terms: under collection-wide statistics "refund" and
    # "receipt" would become common words and every score above would fall.
    other = f"{tenant}x"
    flood = {f"flood{i}.md": f"# Refund {i}\n\nRefund receipt refund receipt number {i}." for i in range(12)}
    await ingest(client, settings, redis_client, _write(tmp_path / "theirs", flood), other)
    assert term_stats.read(redis_client, other, []).chunks == 12
    assert _ranking(deps, redis_client, tenant, "refund receipt shipping") == before
