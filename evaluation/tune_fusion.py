"""Choose the fusion re-scorer's normalisation and weight on tuning queries, report held-out ones.

`python -m evaluation.tune_fusion --dataset A [--dataset B ...] [--cache DIR]`, with the stack up.
For each dataset, every judged query runs once through QueryWorkflow in hybrid mode without
re-scoring (the candidates and both raw scores are what the re-scorer sees), then each fusion
setting (`retrieval.fusion`: method x dense weight) re-scores the same candidates offline.

The queries are split before anything is chosen: a dataset with a train split (SciFact) tunes on
train and holds out test; one without (a SQuAD part) is halved by a hash of the query id. One
setting is chosen for all datasets, by the mean of their tuning nDCG@10, since a deployment gets
one default and corpora it has never seen (z-scores, which need no corpus-specific scale, unless
another method is better by more than `PREFER_MARGIN`); each dataset's held-out figure is then printed beside
BM25, dense and hybrid RRF, which are read from the same runs.

Last lines: `fusion_best=<method>:<weight>`, `<name>_heldout_default_ndcg10=`,
`<name>_heldout_best_ndcg10=` per dataset.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
import zlib
from dataclasses import asdict
from pathlib import Path

from app.query import build_query, run_query
from contracts.query import Scored
from evaluation.beir import Split, load_split
from evaluation.run import ensure_ingested, eval_tenant
from keel import offline  # noqa: F401
from keel.config import Settings, get_settings
from retrieval.fusion import METHODS, fuse
from retrieval.metrics import summarise
from stores import redis as redis_store
from stores.query_state import final_ranking
from temporal.client import connect

WEIGHTS = [round(0.05 * i, 2) for i in range(1, 20)]
PREFER_MARGIN = 0.003
Runs = dict[str, list[Scored]]  # query id -> candidates in retrieval (RRF) order


def halves(folder: Path) -> tuple[Split, Split]:
    """(tuning, held-out) judged queries."""
    try:
        return load_split(folder, "train"), load_split(folder, "test")
    except FileNotFoundError:
        every = load_split(folder, "test")

        def half(keep: int) -> Split:
            qids = [q for q in every.queries if zlib.crc32(q.encode()) % 2 == keep]
            return Split(
                name="tune" if keep == 0 else "held-out",
                queries={q: every.queries[q] for q in qids},
                qrels={q: every.qrels[q] for q in qids},
            )

        return half(0), half(1)


async def candidates(settings: Settings, folder: Path, queries: dict[str, str]) -> tuple[Runs, dict[str, str]]:
    client = await connect(settings)
    r = redis_store.connect(settings)
    tenant = eval_tenant(folder)
    mapping = await ensure_ingested(client, settings, r, folder, tenant)
    gate = asyncio.Semaphore(8)
    runs: Runs = {}

    async def one(qid: str, text: str) -> None:
        inp = build_query(
            settings, r, f"tune-{uuid.uuid4().hex}", tenant, [], text, mode="hybrid", rerank=False, answer=False
        )
        async with gate:
            out = await run_query(client, settings, inp)
        runs[qid] = final_ranking(r, tenant, inp.request_id, out.ranking)

    await asyncio.gather(*(one(q, t) for q, t in queries.items()))
    return runs, mapping


def load_or_run(settings: Settings, folder: Path, queries: dict[str, str], cache: Path | None) -> tuple[Runs, dict]:
    path = cache / f"{folder.resolve().name}.json" if cache else None
    if path and path.exists():
        data = json.loads(path.read_text())
        return {q: [Scored(**s) for s in v] for q, v in data["runs"].items()}, data["mapping"]
    runs, mapping = asyncio.run(candidates(settings, folder, queries))
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"runs": {q: [asdict(s) for s in v] for q, v in runs.items()}, "mapping": mapping}))
    return runs, mapping


def ndcg10(runs: dict[str, list[str]], split: Split) -> float:
    return summarise({q: runs[q] for q in split.queries if q in runs}, split.qrels)["ndcg@10"]


def ranked(runs: Runs, mapping: dict[str, str], order: str, method: str = "", weight: float = 0.0) -> dict:
    """Query id -> BEIR doc ids under one ordering of the same candidates."""
    out: dict[str, list[str]] = {}
    for q, cands in runs.items():
        if order == "rrf-retrieval":
            best = list(cands)
        elif order in ("dense", "bm25"):
            key = "dense" if order == "dense" else "sparse"
            best = sorted((c for c in cands if getattr(c, key) is not None), key=lambda c: -getattr(c, key))
        else:
            fused = fuse([c.dense for c in cands], [c.sparse for c in cands], method, weight)
            best = [c for _, c in sorted(zip(fused, cands, strict=True), key=lambda x: -x[0])]
        out[q] = [mapping.get(c.doc_id, c.doc_id) for c in best]
    return out


def settings_grid() -> list[tuple[str, float]]:
    return [(m, w) for m in METHODS if m != "rrf" for w in WEIGHTS] + [("rrf", 0.5)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, action="append", required=True)
    parser.add_argument("--cache", type=Path, help="keep each dataset's candidates here and reuse them next time")
    args = parser.parse_args()
    settings = get_settings()
    data = []
    for folder in args.dataset:
        tune, held = halves(folder)
        runs, mapping = load_or_run(settings, folder, {**tune.queries, **held.queries}, args.cache)
        data.append((folder.resolve().name, tune, held, runs, mapping))
        print(f"{folder.resolve().name}: {len(tune.queries)} tuning, {len(held.queries)} held-out queries", flush=True)

    grid = settings_grid()
    tuning = {s: [ndcg10(ranked(runs, mp, "fused", *s), tune) for _, tune, _, runs, mp in data] for s in grid}
    mean = {s: sum(v) / len(v) for s, v in tuning.items()}
    for method in METHODS:
        top = max((s for s in grid if s[0] == method), key=lambda s: mean[s])
        cells = "  ".join(f"{v:.4f}" for v in tuning[top])
        print(f"best {method:<7} on tuning queries: weight {top[1]:.2f}  mean {mean[top]:.4f}  ({cells})")
    best = max(grid, key=lambda s: mean[s])
    # Self-normalising z-scores are preferred unless another method is clearly better: a
    # difference of a few thousandths in nDCG@10 over a few hundred queries is noise.
    z_best = max((s for s in grid if s[0] == "zscore"), key=lambda s: mean[s])
    if mean[best] - mean[z_best] <= PREFER_MARGIN:
        best = z_best
    default = (settings.fusion_method, settings.fusion_dense_weight)
    lines = [f"fusion_best={best[0]}:{best[1]:g}"]
    for name, _, held, runs, mp in data:
        row = {
            "BM25": ndcg10(ranked(runs, mp, "bm25"), held),
            "dense": ndcg10(ranked(runs, mp, "dense"), held),
            "hybrid RRF": ndcg10(ranked(runs, mp, "rrf-retrieval"), held),
            f"default {default[0]}:{default[1]:g}": ndcg10(ranked(runs, mp, "fused", *default), held),
            f"best {best[0]}:{best[1]:g}": ndcg10(ranked(runs, mp, "fused", *best), held),
        }
        print(f"{name} held-out nDCG@10: " + "  ".join(f"{k} {v:.4f}" for k, v in row.items()))
        lines += [
            f"{name}_heldout_default_ndcg10={list(row.values())[3]:.4f}",
            f"{name}_heldout_best_ndcg10={list(row.values())[4]:.4f}",
        ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
