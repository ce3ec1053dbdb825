"""`keel eval`: retrieval quality of BM25, dense, hybrid and hybrid + re-scoring, side by side.

The corpus is ingested once, through the workflows like any other batch, into its own tenant
(`eval-<dataset folder>`); later runs find it there. Each judged query then runs through
QueryWorkflow with `answer=False` (retrieve and re-score only) in each mode, and the document
rankings are scored with BEIR's metrics. The report (Markdown, PNG chart, JSON) goes to
bench/results/; the last line printed is `<dataset>_ndcg10=<default pipeline's nDCG@10>`.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import redis
from temporalio.client import Client

from app.ingest import stage, start_batch
from app.query import build_query, run_query
from contracts.query import QueryOutput
from evaluation.beir import Split, load_split, write_documents
from index.catalog import Catalog
from keel import ids
from keel.config import Settings
from retrieval.metrics import summarise
from stores.query_state import final_ranking


@dataclass(frozen=True)
class Mode:
    label: str
    mode: str
    rerank: bool
    second_hop: bool = False


MODES = (
    Mode("BM25", "bm25", False),
    Mode("dense (MiniLM)", "dense", False),
    Mode("hybrid (RRF)", "hybrid", False),
    Mode("hybrid + re-score", "hybrid", True),
    Mode("hybrid + re-score + second hop", "hybrid", True, second_hop=True),  # the default pipeline
)
DEFAULT = MODES[-1].label

_NOT_IN_NAME = re.compile(r"[^a-z0-9_-]")


def eval_tenant(folder: Path) -> str:
    return "eval-" + _NOT_IN_NAME.sub("-", folder.resolve().name.lower())[:50]


async def ensure_ingested(
    client: Client, settings: Settings, r: redis.Redis, folder: Path, tenant: str
) -> dict[str, str]:
    """Ingest the corpus once; returns Keel document id -> BEIR document id."""
    docs_dir = settings.data_dir / "eval" / tenant / "corpus"
    paths = write_documents(folder, docs_dir)
    mapping = {ids.document_id(tenant, str(p)): p.stem for p in paths}  # sources are paths as given
    have = Catalog(r).document_count(tenant)
    if have >= len(paths):
        print(f"corpus already ingested into tenant {tenant} ({have} documents)")
        return mapping
    print(f"ingesting {len(paths)} documents into tenant {tenant} (once; {have} there now)...", flush=True)
    started = time.monotonic()
    handle = await start_batch(client, settings, r, stage(settings, [docs_dir], tenant), tenant, [])
    counters = await handle.result()
    print(
        f"ingested {counters.ingested}, unchanged {counters.unchanged}, failed {counters.failed} "
        f"in {time.monotonic() - started:.0f} s"
    )
    return mapping


async def run_mode(
    client: Client, settings: Settings, r: redis.Redis, tenant: str, split: Split, mode: Mode, concurrency: int = 8
) -> tuple[dict[str, list[str]], list[float]]:
    """Query id -> Keel doc ids (best first), and each query's workflow latency in ms."""
    gate = asyncio.Semaphore(concurrency)
    runs: dict[str, list[str]] = {}
    latencies: list[float] = []

    async def one(qid: str, text: str) -> None:
        inp = build_query(
            settings, r, uuid.uuid4().hex, tenant, [], text, mode=mode.mode, rerank=mode.rerank, answer=False
        )
        inp.second_hop = mode.second_hop
        async with gate:
            started = time.perf_counter()
            out: QueryOutput = await run_query(client, settings, inp)
            latencies.append((time.perf_counter() - started) * 1000)
        runs[qid] = [s.doc_id for s in final_ranking(r, tenant, inp.request_id, out.ranking)]

    await asyncio.gather(*(one(q, t) for q, t in split.queries.items()))
    return runs, latencies


async def evaluate(
    client: Client,
    settings: Settings,
    r: redis.Redis,
    folder: Path,
    split_name: str,
    out_dir: Path,
    protect: Callable[[str, str], str] | None = None,
) -> dict[str, dict[str, float]]:
    """Every mode over the split's questions; `protect` (tenant, question) -> the question as the
    edge would send it to the workflow (redacted or pseudonymised), once per question."""
    tenant = eval_tenant(folder)
    mapping = await ensure_ingested(client, settings, r, folder, tenant)
    split = load_split(folder, split_name)
    print(f"{len(split.queries)} {split_name} queries with judgements", flush=True)
    if protect is not None:
        asked = {q: await asyncio.to_thread(protect, tenant, text) for q, text in split.queries.items()}
        changed = sum(asked[q] != text for q, text in split.queries.items())
        print(f"questions protected as the edge does: {changed} of {len(asked)} changed", flush=True)
        split = replace(split, queries=asked)
    results: dict[str, dict[str, float]] = {}
    for mode in MODES:
        runs, lat = await run_mode(client, settings, r, tenant, split, mode)
        beir_runs = {q: [mapping.get(d, d) for d in docs] for q, docs in runs.items()}
        results[mode.label] = summarise(beir_runs, split.qrels)
        results[mode.label]["p50_ms"] = sorted(lat)[len(lat) // 2] if lat else 0.0
        print(_row(mode.label, results[mode.label]), flush=True)
    write_report(results, folder.resolve().name, split_name, settings, out_dir)
    return results


def _row(label: str, m: dict[str, float]) -> str:
    return (
        f"{label:<31} nDCG@10 {m['ndcg@10']:.4f}  R@10 {m['recall@10']:.4f}  R@100 {m['recall@100']:.4f}  "
        f"MRR@10 {m['mrr@10']:.4f}  all@10 {m['all@10']:.4f}  (p50 {m['p50_ms']:.0f} ms/query)"
    )


def write_report(
    results: dict[str, dict[str, float]], name: str, split: str, settings: Settings, out_dir: Path
) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"eval-{name}-{split}"
    lines = [
        f"# Retrieval quality: {name} ({split} split)",
        "",
        f"Embedding: {settings.embedding_model_id}; re-scorer: "
        + (
            f"cross-encoder {settings.rerank_model_path}"
            if settings.rerank_model_path
            else f"fusion ({settings.fusion_method}), dense weight {settings.fusion_dense_weight}"
        )
        + f"; candidates {settings.retrieve_candidates}, prefetch {settings.retrieve_prefetch} per list.",
        "",
        "| pipeline | nDCG@10 | Recall@10 | Recall@100 | MRR@10 | all relevant in top 10 | p50 ms/query |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, m in results.items():
        mark = " (default)" if label == DEFAULT else ""
        lines.append(
            f"| {label}{mark} | {m['ndcg@10']:.4f} | {m['recall@10']:.4f} | {m['recall@100']:.4f} | "
            f"{m['mrr@10']:.4f} | {m['all@10']:.4f} | {m['p50_ms']:.0f} |"
        )
    lines += ["", f"![chart]({stem.name}.png)", ""]
    stem.with_suffix(".md").write_text("\n".join(lines))
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2))
    _chart(results, f"{name} ({split})", stem.with_suffix(".png"))
    return stem.with_suffix(".md")


def _chart(results: dict[str, dict[str, float]], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = ["ndcg@10", "recall@10", "recall@100", "mrr@10"]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / len(results)
    for i, (label, m) in enumerate(results.items()):
        xs = [j + i * width for j in range(len(metrics))]
        ax.bar(xs, [m[k] for k in metrics], width, label=label)
    ax.set_xticks([j + width * (len(results) - 1) / 2 for j in range(len(metrics))], metrics)
    ax.set_ylim(0, 1)
    ax.set_title(f"Keel retrieval: {title}")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
