"""Tune the fusion re-scorer's one weight on the TRAIN split (never on test).

`python -m evaluation.tune_fusion [--dataset ../shared/datasets/scifact]`, with the stack up.
Runs hybrid retrieval (no re-scoring) for every judged train query through QueryWorkflow, then
re-scores the same candidates offline for each dense weight in a grid and prints nDCG@10 per
weight and the best one, to be set as `fusion_dense_weight` in keel.config.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from pathlib import Path

from app.query import build_query, run_query
from contracts.query import Scored
from evaluation.beir import load_split
from evaluation.metrics import summarise
from evaluation.run import MODES, ensure_ingested, eval_tenant
from keel import offline  # noqa: F401
from keel.config import get_settings
from retrieval.rerank import FusionReranker
from stores import redis as redis_store
from stores.query_state import final_ranking
from temporal.client import connect

GRID = [round(0.05 * i, 2) for i in range(21)]


async def main_async(folder: Path) -> None:
    settings = get_settings()
    client = await connect(settings)
    r = redis_store.connect(settings)
    tenant = eval_tenant(folder)
    mapping = await ensure_ingested(client, settings, r, folder, tenant)
    split = load_split(folder, "train")
    gate = asyncio.Semaphore(8)
    scored: dict[str, list[Scored]] = {}

    async def one(qid: str, text: str) -> None:
        inp = build_query(
            settings, r, f"tune-{uuid.uuid4().hex}", tenant, [], text, mode="hybrid", rerank=False, answer=False
        )
        async with gate:
            out = await run_query(client, settings, inp)
        scored[qid] = final_ranking(r, tenant, inp.request_id, out.ranking)

    await asyncio.gather(*(one(q, t) for q, t in split.queries.items()))
    hybrid = summarise({q: [mapping.get(s.doc_id, s.doc_id) for s in v] for q, v in scored.items()}, split.qrels)
    print(f"train queries {len(split.queries)}; {MODES[2].label}: nDCG@10 {hybrid['ndcg@10']:.4f}")
    best = (0.0, -1.0)
    for w in GRID:
        fusion = FusionReranker(w)
        runs = {q: [mapping.get(s.doc_id, s.doc_id) for s in fusion.rerank("", v, {}, 0)] for q, v in scored.items()}
        ndcg = summarise(runs, split.qrels)["ndcg@10"]
        print(f"dense weight {w:.2f}: nDCG@10 {ndcg:.4f}")
        best = max(best, (ndcg, w))
    print(f"best dense weight on train: {best[1]:.2f} (nDCG@10 {best[0]:.4f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=Path("../shared/datasets/scifact"))
    asyncio.run(main_async(parser.parse_args().dataset))


if __name__ == "__main__":
    main()
