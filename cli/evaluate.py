"""`keel eval`: retrieval and answer quality, the golden gate, follow-up questions (operators:
it ingests datasets into tenants of their own and reads query state from Redis)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import redis
import typer

from cli.common import connect_redis as _redis
from cli.common import fail as _fail
from keel import offline  # noqa: F401 - before any library that might reach for the network
from keel.config import Settings, get_settings
from keel.errors import DatasetNotFound, KeelError
from temporal.client import connect


def eval_(
    dataset: Annotated[Path, typer.Option(help="a BEIR-format folder")] = Path("../shared/datasets/scifact"),
    split: Annotated[str, typer.Option(help="test (measure) or train")] = "test",
    out: Annotated[Path, typer.Option(help="where the report goes")] = Path("bench/results"),
    answers: Annotated[bool, typer.Option(help="also score the answers (a dataset with answers.jsonl)")] = False,
    retrieval: Annotated[bool, typer.Option(help="score retrieval in each mode")] = True,
    limit: Annotated[
        int | None, typer.Option(help="answers: a fixed sample of this many questions (a slow local model)")
    ] = None,
    concurrency: Annotated[int, typer.Option(help="answers: questions in flight at once")] = 8,
    offset: Annotated[
        int, typer.Option(help="answers: skip this many of the fixed sample's order (a fresh sample to label)")
    ] = 0,
    golden: Annotated[
        bool, typer.Option(help="only the golden set over the sample corpus, against its committed baseline")
    ] = False,
    conversations: Annotated[
        bool, typer.Option(help="follow-up turns: raw, Keel's rewrite and a human's (conversations.jsonl)")
    ] = False,
) -> None:
    """Retrieval quality (nDCG@10, Recall@10/100, MRR) of BM25, dense, hybrid and hybrid + re-score;
    with --answers, answer quality too (contains gold, F1, abstention, support); with --golden,
    the quality gate (exits 1 when a figure falls below its baseline)."""
    from evaluation.answers import evaluate_answers
    from evaluation.beir import check_dataset
    from evaluation.run import DEFAULT, evaluate

    settings = get_settings()
    if golden:
        _golden(settings)
        return
    name = dataset.resolve().name
    if conversations:
        _conversations(settings, dataset, out, concurrency)
        return

    async def run() -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
        client, r = await connect(settings), _redis(settings)
        protect = _edge_protection(settings, r)
        found = await evaluate(client, settings, r, dataset, split, out, protect) if retrieval else {}
        said = await evaluate_answers(client, settings, r, dataset, out, limit, concurrency, offset) if answers else {}
        return found, said

    try:
        check_dataset(dataset)
        if answers and not (dataset / "answers.jsonl").is_file():
            raise DatasetNotFound(f"no answers.jsonl in {dataset}: --answers needs gold answers")
        results, scored = asyncio.run(run())
    except KeelError as exc:
        _fail(exc)
    if results:
        print(f"{name}_ndcg10={results[DEFAULT]['ndcg@10']:.4f}")
        print(f"{name}_all_in_top10={results[DEFAULT]['all@10']:.4f}")
    if scored:
        m = scored["all"]
        print(f"{name}_answer_contains={m['answer_contains']:.4f}")
        print(f"{name}_answer_f1={m['answer_f1']:.4f}")
        print(f"{name}_abstain_unanswerable={m['abstain_unanswerable']:.4f}")
        print(f"{name}_abstain_answerable={m['abstain_answerable']:.4f}")
        print(f"{name}_model_citations={m['model_citations']:.4f}")
        print(f"{name}_attributed_citations={m['attributed_citations']:.4f}")
        print(f"{name}_first_token_p50_ms={m['first_token_p50_ms']:.0f}")
        print(f"{name}_first_token_p95_ms={m['first_token_p95_ms']:.0f}")
        print(f"{name}_total_p50_ms={m['total_p50_ms']:.0f}")
        print(f"{name}_total_p95_ms={m['total_p95_ms']:.0f}")
        print(f"{name}_ungrounded={m['ungrounded']:.4f}")
        print(f"{name}_silent_uncited={m['silent_uncited']:.0f}")


def _conversations(settings: Settings, dataset: Path, out: Path, concurrency: int) -> None:
    from evaluation.beir import check_dataset
    from evaluation.conversations import VARIANTS, evaluate_conversations

    async def run() -> dict[str, dict[str, float]]:
        return await evaluate_conversations(
            await connect(settings), settings, _redis(settings), dataset, out, concurrency
        )

    try:
        check_dataset(dataset)
        results = asyncio.run(run())
    except KeelError as exc:
        _fail(exc)
    name = dataset.resolve().name
    for variant in VARIANTS:
        print(f"{name}_{variant}_ndcg10={results[variant]['ndcg@10']:.4f}")
    for variant, closed in results["gap_closed"].items():
        print(f"{name}_{variant}_gap_closed={closed:.4f}")


def _edge_protection(settings: Settings, r: redis.Redis) -> Callable[[str, str], str] | None:
    """(tenant, question) -> the question as the edge protects it before its workflow: redacted,
    or pseudonymised with the tenant's tokens and policy (`KEEL_PII_PSEUDONYMS`); None when the
    edge does not protect questions (`KEEL_REDACT_QUESTIONS=false`)."""
    from app.query import protect_question
    from contracts.query import QueryInput
    from guardrails.pii import Redactor
    from pipelines.deps import build_vault

    if not settings.redact_questions:
        return None
    redactor = Redactor(settings.pii_entities, settings.pii_score_threshold, settings.pii_use_ner)
    vault = build_vault(settings, r) if settings.pii_pseudonyms else None

    def protect(tenant: str, question: str) -> str:
        inp = QueryInput(request_id="eval", tenant=tenant, groups=[], question=question)
        return protect_question(inp, redactor, vault, r, settings)[0].question

    return protect


def _golden(settings: Settings) -> None:
    from evaluation.golden import baseline, measure, regressions, table, tolerance

    async def run() -> dict[str, float]:
        return await measure(await connect(settings), settings, _redis(settings), "eval-golden")

    try:
        measured = asyncio.run(run())
    except KeelError as exc:
        _fail(exc)
    floors = baseline()
    print(table(measured, floors))
    failed = regressions(measured, floors, tolerance())
    for line in failed:
        print(f"regression: {line}")
    for key, value in measured.items():
        print(f"golden_{key.replace('@', '')}={value:.4f}")
    if failed:
        raise typer.Exit(1)
