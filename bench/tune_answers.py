"""Tune the extractive answerer on one half of a SQuAD-shaped dataset, report on the other half.

`python -m bench.tune_answers [--dataset ../shared/datasets/squad2_dev_part]`. A private
Redis and index are started; the corpus goes through the real ingest steps (redaction, dedupe,
embedding) in-process; every question runs through the real query steps once (question
redaction, retrieval, re-scoring, context packing) and its context is kept. Each answerer setting
in the grid is then scored on those contexts, offline, with `keel eval --answers`' metrics. The
questions are split by article (the gold `context_id`'s prefix): settings are chosen on the
articles of the tuning half only and then reported on the held-out half. Last lines: the shipped
default over every question (`answer_f1=`, `answer_contains=`, `declines_unanswerable=`,
`declines_answerable=`).
"""

from __future__ import annotations

import argparse
import itertools
import pickle
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from app.query import build_query
from contracts.query import ContextInput, ContextPassage, QueryOutput, RerankInput, RetrieveInput
from evaluation.answers import Gold, load_gold, score, summary
from evaluation.beir import load_queries, write_documents
from generation.extractive import AnswererConfig, ExtractiveAnswerer
from generation.providers import GenerationRequest
from generation.router import CLARIFY, NO_SOURCES, RoutingConfig, choose_route
from generation.validate import check_citations
from index.catalog import Catalog
from infra.services import free_port, start_redis
from infra.worker import build_query_steps
from keel import offline  # noqa: F401
from keel.config import Settings
from pipelines.deps import build_deps
from pipelines.ingest import IngestSteps, ingest_plain, local_document
from workflows.policies import query_budgets

TENANT = "tune-answers"


@dataclass
class Case:
    gold: Gold
    question: str
    passages: list[ContextPassage]
    confidence: float


def contexts(settings: Settings, folder: Path, work: Path) -> tuple[list[Case], dict[str, str]]:
    deps = build_deps(settings)
    steps = IngestSteps(deps)
    try:
        paths = write_documents(folder, work / "corpus")
        for path in paths:
            data = path.read_bytes()
            ingest_plain(steps, local_document(TENANT, path, data), data)
        Catalog(deps.redis).add_tenant(TENANT)
        from keel import ids

        mapping = {ids.document_id(TENANT, str(p)): p.stem for p in paths}
        acts = build_query_steps(settings, deps)
        budget = query_budgets({})
        questions = load_queries(folder)
        cases = []
        for gold in load_gold(folder):
            q = questions[gold.question_id]
            inp = build_query(settings, deps.redis, uuid.uuid4().hex, TENANT, [], q, redactor=deps.redactor)
            ret = acts.retrieve(RetrieveInput(query=inp))
            rr = acts.rerank(
                RerankInput(
                    question=inp.question,
                    candidates_key=ret.candidates_key,
                    ranking=ret.ranking,
                    deadline_ms=budget["rerank"],
                )
            )
            ctx = acts.context(
                ContextInput(
                    tenant=TENANT,
                    question=inp.question,
                    candidates_key=ret.candidates_key,
                    ranking=rr.ranking,
                    token_budget=0,
                    request_id=inp.request_id,
                )
            )
            cases.append(Case(gold, inp.question, ctx.passages, ctx.confidence))
        print(f"{len(cases)} questions with their contexts", flush=True)
        return cases, mapping
    finally:
        deps.close()


def answer(case: Case, config: AnswererConfig, routing: RoutingConfig) -> QueryOutput:
    route = choose_route(case.question, case.confidence, len(case.passages), routing)
    if route in (NO_SOURCES, CLARIFY):
        return QueryOutput(
            request_id="",
            answer="",
            citations=[],
            degradations=[],
            timings_ms={},
            route=route,
            no_sources=route == NO_SOURCES,
            clarifying=route == CLARIFY,
        )
    req = GenerationRequest(
        prompt="", question=case.question, passages=case.passages, max_output_tokens=512, timeout_s=1.0
    )
    text = ExtractiveAnswerer(config).generate(req).text
    checked = check_citations(text, case.passages)
    return QueryOutput(
        request_id="",
        answer=checked.text,
        citations=checked.citations,
        degradations=[],
        timings_ms={},
        route=route,
        provider="extractive",
        supported_rate=checked.supported_rate,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=Path("../shared/datasets/squad2_dev_part"))
    parser.add_argument("--cache", type=Path, help="keep the contexts here (pickle) and reuse them next time")
    args = parser.parse_args()
    settings = Settings()
    if args.cache and args.cache.exists():
        cases, mapping = pickle.loads(args.cache.read_bytes())
    else:
        work = Path(tempfile.mkdtemp(prefix="keel-tune-answers-"))
        red = start_redis(work / "services", port=free_port())
        try:
            private = settings.model_copy(
                update={
                    "data_dir": work / "data",
                    "redis_url": f"redis://127.0.0.1:{red.port}/0",
                    "ingest_processes": 0,
                }
            )
            cases, mapping = contexts(private, args.dataset, work)
        finally:
            red.stop()
            shutil.rmtree(work, ignore_errors=True)
        if args.cache:
            args.cache.write_bytes(pickle.dumps((cases, mapping)))
    articles = sorted({c.gold.context_id.rsplit("_", 1)[0] for c in cases})
    tune_set = set(articles[::2])
    halves = {
        "tune": [c for c in cases if c.gold.context_id.rsplit("_", 1)[0] in tune_set],
        "held-out": [c for c in cases if c.gold.context_id.rsplit("_", 1)[0] not in tune_set],
    }
    print(f"tuning on {sorted(tune_set)}; held out: {sorted(set(articles) - tune_set)}")
    routing = RoutingConfig(settings.clarify_below, settings.easy_min_confidence, settings.easy_max_words)
    grid = [
        AnswererConfig(
            max_sentences=k, keep_ratio=r, min_coverage=m, answer_type=t, phrase_weight=ph, negation=d, details=d
        )
        for k, r, m, t, ph, d in itertools.product(
            (1, 3), (0.0, 0.5), (0.0, 0.3), (False, True), (0.0, 1.0), (False, True)
        )
    ]
    default = AnswererConfig()

    def measure(config: AnswererConfig, half: str) -> dict[str, float]:
        return summary(score(c.gold, answer(c, config, routing), mapping) for c in halves[half])

    def line(name: str, m: dict[str, float]) -> str:
        return (
            f"{name:<44} contains {m['answer_contains']:.3f}  F1 {m['answer_f1']:.3f}  "
            f"declines unanswerable {m['abstain_unanswerable']:.3f}  answerable {m['abstain_answerable']:.3f}"
        )

    # One number to choose by: F1 on answerable questions plus the share of unanswerable ones
    # declined, minus the share of answerable ones declined (each wrong decline costs an answer).
    def objective(m: dict[str, float]) -> float:
        return m["answer_f1"] + m["answer_contains"] + m["abstain_unanswerable"] - 2 * m["abstain_answerable"]

    results = [(objective(m), cfg, m) for cfg in grid for m in [measure(cfg, "tune")]]
    results.sort(key=lambda x: -x[0])
    for value, cfg, m in results[:12]:
        print(f"{value:.3f}  " + line(str(cfg), m))
    for value, cfg, m in results:  # the abstention trade-off: every setting that declines
        if cfg.max_sentences == 3 and cfg.keep_ratio == 0.5 and cfg.phrase_weight == 1.0:
            print(f"{value:.3f}  " + line(str(cfg), m))
    best = results[0][1]
    # extractive-v3, the default before the negation, number and definition rules
    before = AnswererConfig(negation=False, details=False, define_weight=0.0)
    for half in halves:
        print(line(f"{half}: extractive-v3", measure(before, half)))
        print(line(f"{half}: shipped default {default}", measure(default, half)))
        print(line(f"{half}: best on tune {best}", measure(best, half)))
    every = summary(score(c.gold, answer(c, default, routing), mapping) for c in cases)
    print(f"answer_f1={every['answer_f1']:.4f}")
    print(f"answer_contains={every['answer_contains']:.4f}")
    print(f"declines_unanswerable={every['abstain_unanswerable']:.4f}")
    print(f"declines_answerable={every['abstain_answerable']:.4f}")


if __name__ == "__main__":
    main()
