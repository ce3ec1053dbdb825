"""The same operations on Qdrant Edge and on qdrant-client (local mode, the server's API) agree."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import cast

import numpy as np
import pytest

from encoders.sparse import Sparse, SparseEncoder
from infra.services import free_port
from keel.errors import IndexOutdated, VectorStoreUnavailable
from vectorstore.base import BM25_LEN, KEYWORD_INDEXES, LEGACY_SPARSE, SPARSE, ChunkPoint, Cond, VectorStore, Where
from vectorstore.edge import EdgeStore
from vectorstore.server import Layout, ServerStore

DIM = 16
TEXTS = [
    "The mitochondria is the powerhouse of the cell",
    "Cells divide by mitosis and meiosis",
    "Quantum entanglement links distant particles",
    "Particles and waves: the double slit experiment",
    "Insulin regulates glucose in the blood",
    "Blood pressure rises with sodium intake",
    "Neural networks learn representations of data",
    "Gradient descent minimises a loss function",
    "The cell membrane controls what enters the cell",
    "Photosynthesis converts light into chemical energy",
    "Glucose metabolism in the liver and muscle",
    "Particles in a magnetic field follow helical paths",
]


def _points() -> list[ChunkPoint]:
    rng = random.Random(3)
    enc = SparseEncoder()
    pts = []
    for i, text in enumerate(TEXTS):
        pts.append(
            ChunkPoint(
                id=f"00000000-0000-0000-0000-{i:012d}",
                dense=[rng.uniform(-1, 1) for _ in range(DIM)],
                sparse=enc.document(enc.terms(text), avg_len=6.0),
                payload={
                    BM25_LEN: len(enc.terms(text)),
                    "tenant": "acme" if i % 3 else "other",
                    "access_groups": ["eng"] if i % 2 else ["eng", "hr"],
                    "doc_id": f"d{i // 4}",
                    "version": "v1",
                    "visible_from": 1,
                    "visible_until": 2**62,
                    "text": text,
                },
            )
        )
    return pts


CLUSTER_LAYOUT = Layout(shards=3, replication=2, write_consistency=1)


def _open(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> VectorStore:
    """Edge, qdrant-client's local mode, a live server, or a live 3-node cluster; empty."""
    s: VectorStore
    if kind == "edge":
        s = EdgeStore(tmp_path / "edge")
    elif kind == "local":
        s = ServerStore(path=str(tmp_path / "local"))
    elif kind == "server":
        s = ServerStore(url=request.getfixturevalue("qdrant_server").url)
    else:
        s = ServerStore(url=request.getfixturevalue("qdrant_cluster").url, layout=CLUSTER_LAYOUT)
    s.drop_collection("c")  # a live server outlives a test
    return s


@pytest.fixture(params=["edge", "local", "server", "cluster"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    s = _open(request.param, tmp_path, request)
    s.ensure_collection("c", DIM)
    s.upsert("c", _points())
    yield s
    s.close()


def _bm25(text: str) -> Sparse:
    """A question's BM25 vector over TEXTS as one tenant's chunks."""
    enc = SparseEncoder()
    df = Counter(t for doc in TEXTS for t in set(enc.terms(doc)))
    return enc.query(enc.terms(text), len(TEXTS), df)


def _run_all(s: VectorStore) -> dict[str, object]:
    rng = random.Random(11)
    q = [rng.uniform(-1, 1) for _ in range(DIM)]
    acme = Where(must=(Cond("tenant", value="acme"), Cond("access_groups", any=("hr", "ops"))))
    visible = Where(must=(Cond("tenant", value="acme"), Cond("visible_from", lte=1), Cond("visible_until", gt=1)))
    out: dict[str, object] = {}
    out["count_all"] = s.count("c")
    out["count_acme"] = s.count("c", Where(must=(Cond("tenant", value="acme"),)))
    out["count_acl"] = s.count("c", acme)
    out["count_not_d0"] = s.count("c", Where(must_not=(Cond("doc_id", value="d0"),)))
    out["dense"] = [h.id for h in s.search_dense("c", q, visible, 5)]
    out["dense_scores"] = [round(h.score, 4) for h in s.search_dense("c", q, visible, 5)]
    out["sparse"] = [h.id for h in s.search_sparse("c", _bm25("cell particles"), visible, 5)]
    out["sparse_scores"] = [round(h.score, 3) for h in s.search_sparse("c", _bm25("cell particles"), visible, 5)]
    out["hybrid"] = [h.id for h in s.search_hybrid("c", q, _bm25("glucose blood"), visible, 5, prefetch=20)]
    out["hybrid_acl"] = [h.id for h in s.search_hybrid("c", q, _bm25("cell"), acme, 5, prefetch=20)]
    page, nxt = s.scroll("c", Where(must=(Cond("doc_id", value="d1"),)), limit=3)
    out["scroll"] = (sorted(h.id for h in page), nxt is not None)
    out["term_lists"] = sorted(s.term_lists("c", Where(must=(Cond("doc_id", value="d1"),))))
    # What a migration copies: the points page by page with their BM25 vectors, then re-read by id.
    with_bm25, _ = s.scroll("c", Where(must=(Cond("doc_id", value="d1"),)), limit=10, with_sparse=True)
    out["scroll_sparse"] = sorted((h.id, _sparse_pairs(h.sparse)) for h in with_bm25)
    ids = [*[h.id for h in with_bm25][:2], "00000000-0000-0000-0000-999999999999"]
    again = s.retrieve("c", ids, with_sparse=True)
    out["retrieve"] = sorted((h.id, h.payload["text"], _sparse_pairs(h.sparse)) for h in again)
    out["retrieve_plain"] = sorted((h.id, h.sparse is None) for h in s.retrieve("c", ids))
    # What a backup reads: both vectors of each point.
    both, _ = s.scroll("c", Where(must=(Cond("doc_id", value="d1"),)), limit=10, with_sparse=True, with_dense=True)
    out["scroll_dense"] = sorted((h.id, [round(x, 4) for x in h.dense or []], h.sparse is not None) for h in both)
    s.set_payload("c", Where(must=(Cond("doc_id", value="d1"),)), {"visible_until": 1})
    out["after_retire"] = s.count("c", visible)
    s.delete("c", Where(must=(Cond("doc_id", value="d2"),)))
    out["after_delete"] = s.count("c")
    out["payload_kept"] = sorted(h.payload["text"] for h in s.scroll("c", Where(must=(Cond("doc_id", value="d0"),)))[0])
    return out


def _unit(vector: list[float]) -> list[float]:
    """Qdrant stores a cosine collection's vectors normalised."""
    v = np.asarray(vector)
    return list(v / np.linalg.norm(v))


def _sparse_pairs(sparse: Sparse | None) -> list[tuple[int, float]]:
    assert sparse is not None, "asked for the BM25 vector and got none"
    return sorted(zip(sparse.indices, (round(v, 4) for v in sparse.values), strict=True))


def test_edge_local_mode_server_and_cluster_agree(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    results = {}
    for kind in ("edge", "local", "server", "cluster"):
        s = _open(kind, tmp_path, request)
        s.ensure_collection("c", DIM)
        s.upsert("c", _points())
        results[kind] = _run_all(s)
        s.close()
    a = results["edge"]
    for kind, b in results.items():
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == b[key], f"{key}: edge={a[key]} {kind}={b[key]}"
    # and the answers are the expected ones, not merely equal
    assert a["count_all"] == 12 and a["count_acme"] == 8 and a["after_delete"] == 8
    enc = SparseEncoder()
    d1 = [t for i, t in enumerate(TEXTS) if i // 4 == 1]
    assert a["term_lists"] == sorted((sorted(set(enc.terms(t))), len(enc.terms(t))) for t in d1)
    stored = {p.id: p for p in _points()}
    scrolled = cast(list[tuple[str, object]], a["scroll_sparse"])
    assert scrolled == sorted((pid, _sparse_pairs(stored[pid].sparse)) for pid, _ in scrolled)
    dense = cast(list[tuple[str, list[float], bool]], a["scroll_dense"])
    assert dense and all(has_sparse for _, _, has_sparse in dense)
    assert all(np.allclose(vec, _unit(stored[pid].dense), atol=1e-3) for pid, vec, _ in dense)
    assert len(cast(list[object], a["retrieve"])) == 2  # the unknown id is simply absent
    assert all(plain for _, plain in cast(list[tuple[str, bool]], a["retrieve_plain"]))


def test_drop_collection_removes_it_and_tolerates_absence(store: VectorStore) -> None:
    store.drop_collection("c")
    store.drop_collection("c")  # already gone: nothing happens
    store.ensure_collection("c", DIM)
    assert store.count("c") == 0


def test_upsert_is_idempotent(store: VectorStore) -> None:
    store.upsert("c", _points())
    assert store.count("c") == len(TEXTS)


def test_tenant_filter_never_leaks(store: VectorStore) -> None:
    hits = store.search_hybrid("c", [0.1] * DIM, _bm25("cell"), Where(must=(Cond("tenant", value="other"),)), 50)
    assert hits and all(h.payload["tenant"] == "other" for h in hits)


def test_a_collection_with_collection_wide_bm25_is_refused_as_unavailable(tmp_path: Path) -> None:
    EdgeStore(tmp_path / "edge").ensure_collection("old", DIM)
    config_path = tmp_path / "edge" / "old" / "edge_config.json"
    saved = json.loads(config_path.read_text())
    saved["sparse_vectors"] = {LEGACY_SPARSE: saved["sparse_vectors"].pop(SPARSE)}
    config_path.write_text(json.dumps(saved))  # as an earlier Keel laid it out
    with pytest.raises(IndexOutdated) as refused:
        EdgeStore(tmp_path / "edge").ensure_collection("old", DIM)
    # Not the caller's fault and not a 500: the service is unavailable until an operator re-ingests.
    assert refused.value.http_status == 503 and refused.value.retry_after_s


def test_a_collection_on_a_cluster_is_laid_out_as_configured(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    s = _open("cluster", tmp_path, request)
    assert isinstance(s, ServerStore)
    s.ensure_collection("c", DIM)
    params = s.client.get_collection("c").config.params
    assert (params.shard_number, params.replication_factor, params.write_consistency_factor) == (3, 2, 1)
    # every shard has a copy on two of the three nodes
    info = s.client.http.distributed_api.collection_cluster_info("c").result
    assert info is not None
    copies = Counter(r.shard_id for r in info.local_shards + info.remote_shards)
    assert copies == {0: 2, 1: 2, 2: 2}
    s.close()


def test_processes_that_create_a_collection_at_once_all_succeed(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("qdrant_server").url
    ServerStore(url=url).drop_collection("race")
    stores = [ServerStore(url=url) for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda s: s.ensure_collection("race", DIM), stores))
    info = stores[0].client.get_collection("race")
    assert set(KEYWORD_INDEXES) <= set(info.payload_schema)
    stores[0].drop_collection("race")


def test_a_node_that_cannot_be_reached_hands_the_next_call_to_the_next(request: pytest.FixtureRequest) -> None:
    live = request.getfixturevalue("qdrant_server").url
    dead = f"http://127.0.0.1:{free_port()}"
    s = ServerStore(url=f"{dead},{live}", timeout=2)
    with pytest.raises(VectorStoreUnavailable, match=dead):
        s.ensure_collection("failover", DIM)  # this call fails, and is retried (Temporal's, in Keel)
    s.ensure_collection("failover", DIM)
    assert s.where == live and s.count("failover") == 0
    s.drop_collection("failover")
    s.close()
