"""The quality gate: a golden set over the sample corpus, measured against committed baselines.

`samples/golden/` holds questions written for `samples/corpus/` (21 answerable, 10 that the corpus
cannot answer), their relevant file (`qrels.tsv`), gold answers in SQuAD's shape
(`answers.jsonl`) and `baseline.json`: the figures the shipped pipeline measured, each a floor.
`measure` ingests the corpus into a tenant through the workflows and asks every question through
QueryWorkflow with the current settings, so a changed prompt, fusion weight, model or router is
measured exactly as it would ship. `regressions` names every figure below its floor (by more than
the baseline's tolerance). `make test` runs it (tests/evaluation/test_golden.py); `keel eval
--golden` runs it against a running stack and exits non-zero on a regression.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import redis
from temporalio.client import Client

from app.ingest import stage, start_batch
from app.query import build_query, run_query
from evaluation.answers import load_gold, score, summary
from evaluation.beir import load_queries, load_split
from keel import ids
from keel.config import Settings
from retrieval.metrics import dedupe, mrr, ndcg, recall
from stores.query_state import final_ranking

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
GOLDEN = SAMPLES / "golden"
CORPUS = SAMPLES / "corpus"
BASELINE = GOLDEN / "baseline.json"
METRICS = ("ndcg@10", "recall@3", "mrr@10", "answer_contains", "answer_f1", "abstain_unanswerable", "supported")
LOWER_IS_BETTER = ("abstain_answerable",)


async def measure(client: Client, settings: Settings, r: redis.Redis, tenant: str) -> dict[str, float]:
    """Ingest the sample corpus into `tenant` (a no-op when it is there) and score every golden question."""
    paths = sorted(p for p in CORPUS.iterdir() if p.is_file())
    handle = await start_batch(client, settings, r, stage(settings, paths, tenant), tenant, [])
    await handle.result()
    name_of = {ids.document_id(tenant, str(p)): p.name for p in paths}
    questions = load_queries(GOLDEN)
    judged = load_split(GOLDEN, "test").qrels
    retrieval = {"ndcg@10": 0.0, "recall@3": 0.0, "mrr@10": 0.0}
    scored = []
    for gold in load_gold(GOLDEN):
        question = questions[gold.question_id]
        inp = build_query(settings, r, uuid.uuid4().hex, tenant, [], question)
        scored.append(score(gold, await run_query(client, settings, inp), name_of))
        rels = judged.get(gold.question_id)
        if rels:  # the ranking again, with no answer: an answered query's state is dropped once delivered
            inp = build_query(settings, r, uuid.uuid4().hex, tenant, [], question, answer=False)
            out = await run_query(client, settings, inp)
            found = final_ranking(r, tenant, inp.request_id, out.ranking)
            ranked = dedupe([name_of.get(s.doc_id, s.doc_id) for s in found])
            retrieval["ndcg@10"] += ndcg(ranked, rels, 10) / len(judged)
            retrieval["recall@3"] += recall(ranked, rels, 3) / len(judged)
            retrieval["mrr@10"] += mrr(ranked, rels, 10) / len(judged)
    answers = summary(scored)
    return {**retrieval, **{k: answers[k] for k in (*METRICS[3:], *LOWER_IS_BETTER)}}


def baseline() -> dict[str, float]:
    return {k: float(v) for k, v in json.loads(BASELINE.read_text())["floors"].items()}


def tolerance() -> float:
    return float(json.loads(BASELINE.read_text()).get("tolerance", 0.0))


def regressions(measured: dict[str, float], floors: dict[str, float], slack: float) -> list[str]:
    """Each figure that fell past its committed floor (or, for a lower-is-better one, rose past its ceiling)."""
    out = []
    for key, floor in floors.items():
        got = measured[key]
        if key in LOWER_IS_BETTER and got > floor + slack:
            out.append(f"{key} {got:.3f} is above its ceiling {floor:.3f} (+{slack})")
        elif key not in LOWER_IS_BETTER and got < floor - slack:
            out.append(f"{key} {got:.3f} is below its floor {floor:.3f} (-{slack})")
    return out


def table(measured: dict[str, float], floors: dict[str, float]) -> str:
    rows = [f"{'metric':<22} {'measured':>9} {'baseline':>9}"]
    rows += [f"{k:<22} {measured[k]:>9.3f} {floors.get(k, float('nan')):>9.3f}" for k in measured]
    return "\n".join(rows)
