"""`make bench-bm25`: Keel's BM25 against `bm25s` (Lucene's BM25) on the same corpus and queries.

For each dataset a private Redis and Qdrant Edge index are started and the corpus goes through
Keel's own parse, chunking, BM25 encoding, upsert and publish (which maintains the tenant's term
statistics), in order, as the plain ingest loop runs them. Redaction and deduplication are left
out (neither is BM25; SciFact has ~0.1 redactions per 1,000 words) and the dense vector is a
placeholder: only BM25 is measured. Queries run through the retriever in `bm25` mode, chunk hits
become a document ranking at each document's best chunk, as `keel eval` does. `bm25s` indexes the
same title-and-text per document with k1 1.5, b 0.75, its English stop words and PyStemmer's
English stemmer (the Lucene variant). Both print nDCG@10 and Recall@100.

Last lines, per dataset: `<name>_bm25_keel_ndcg10=`, `<name>_bm25_bm25s_ndcg10=`, `<name>_bm25_gap=`.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from contracts.ingest import StageOutput
from contracts.query import QueryFilters
from evaluation.beir import check_dataset, corpus, load_split, write_documents
from index.catalog import Catalog, staged_record
from infra.services import free_port, start_redis
from keel import offline  # noqa: F401
from keel.config import Settings
from keel.errors import DatasetNotFound
from pipelines.deps import build_deps
from pipelines.ingest import IngestSteps, local_document
from retrieval.filters import query_where
from retrieval.metrics import dedupe, ndcg, recall
from retrieval.retriever import HybridRetriever

TENANT = "bench-bm25"
K1, B = 1.5, 0.75


def keel_runs(settings: Settings, folder: Path, queries: dict[str, str], work: Path) -> dict[str, list[str]]:
    deps = build_deps(settings)
    steps = IngestSteps(deps)
    # The tenant settles on its encoder (new tenants: KEEL_NEW_TENANT_ENCODER) before its index
    # is opened, as its first ingest would: else the points go to one index and the search to another.
    deps.indexes.settle(TENANT, lambda: 0)
    index = deps.indexes.open(TENANT)
    placeholder = np.zeros((1, index.version.dim), dtype=np.float32)
    placeholder[0, 0] = 1.0
    started = time.perf_counter()
    try:
        paths = write_documents(folder, work / "corpus")
        for path in paths:
            data = path.read_bytes()
            doc = local_document(TENANT, path, data)
            begun = steps.begin(doc)
            parsed = steps.parse(doc, data)
            chunks = steps.chunk(doc, parsed.elements)
            vectors = np.repeat(placeholder, len(chunks), axis=0)
            deps.store.upsert(index.collection, steps.points(doc, begun.doc_id, parsed.title, chunks, vectors, index))
            staged = StageOutput(
                title=parsed.title, chunks=len(chunks), duplicates=0, embedding_version=index.version.key
            )
            steps.publish(doc, begun.doc_id, staged_record(doc, staged))
        print(f"  keel: indexed {len(paths)} documents in {time.perf_counter() - started:.0f} s", flush=True)
        generation = Catalog(deps.redis).generation(TENANT)
        where = query_where(TENANT, generation, [], QueryFilters())
        retriever = HybridRetriever(deps.store, deps.sparse, deps.redis)
        runs = {}
        for qid, q in queries.items():
            found = retriever.retrieve(index, TENANT, q, where, "bm25", 100, 100)
            runs[qid] = dedupe([Path(found.candidates[s.point_id].source).stem for s in found.scored])
        if not any(runs.values()):  # a figure of 0.0000 here would be a broken run, not a result
            sys.exit(f"keel's BM25 found nothing for any of {len(runs)} queries: the run is broken")
        return runs
    finally:
        deps.close()


def bm25s_runs(folder: Path, queries: dict[str, str]) -> dict[str, list[str]]:
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    ids, texts = [], []
    for doc_id, title, text in corpus(folder):
        ids.append(doc_id)
        texts.append(f"{title}\n{text}" if title else text)
    retriever = bm25s.BM25(method="lucene", k1=K1, b=B)
    retriever.index(bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False)
    qids = list(queries)
    tokens = bm25s.tokenize([queries[q] for q in qids], stopwords="en", stemmer=stemmer, show_progress=False)
    docs, _ = retriever.retrieve(tokens, k=min(100, len(ids)), show_progress=False, n_threads=1)
    return {qid: [ids[i] for i in row] for qid, row in zip(qids, docs.tolist(), strict=True)}


def mean(runs: dict[str, list[str]], qrels: dict[str, dict[str, int]], metric: str) -> float:
    fn = ndcg if metric == "ndcg" else recall
    k = 10 if metric == "ndcg" else 100
    return sum(fn(runs.get(q, []), rels, k) for q, rels in qrels.items()) / len(qrels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--datasets",
        type=Path,
        nargs="+",
        default=[Path("../shared/datasets/scifact"), Path("../shared/datasets/squad2_dev_part")],
    )
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    lines = []
    for folder in args.datasets:
        try:
            check_dataset(folder)
        except DatasetNotFound as exc:
            sys.exit(exc.message)
        split = load_split(folder, args.split)
        name = folder.name.split("_")[0]
        print(f"{folder.name} ({args.split}): {len(split.qrels)} judged queries", flush=True)
        work = Path(tempfile.mkdtemp(prefix="keel-bench-bm25-"))
        red = start_redis(work / "services", port=free_port())
        try:
            settings = Settings().model_copy(
                update={
                    "data_dir": work / "data",
                    "redis_url": f"redis://127.0.0.1:{red.port}/0",
                    "ingest_processes": 0,  # parse in-process: this loop is the only work
                }
            )
            keel = keel_runs(settings, folder, split.queries, work)
        finally:
            red.stop()
            shutil.rmtree(work, ignore_errors=True)
        ref = bm25s_runs(folder, split.queries)
        k_ndcg, r_ndcg = mean(keel, split.qrels, "ndcg"), mean(ref, split.qrels, "ndcg")
        k_rec, r_rec = mean(keel, split.qrels, "recall"), mean(ref, split.qrels, "recall")
        print(f"  {'':<8} {'nDCG@10':>8} {'R@100':>8}")
        print(f"  {'keel':<8} {k_ndcg:>8.4f} {k_rec:>8.4f}")
        print(f"  {'bm25s':<8} {r_ndcg:>8.4f} {r_rec:>8.4f}", flush=True)
        lines += [
            f"{name}_bm25_keel_ndcg10={k_ndcg:.4f}",
            f"{name}_bm25_bm25s_ndcg10={r_ndcg:.4f}",
            f"{name}_bm25_gap={k_ndcg - r_ndcg:+.4f}",
        ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
