"""`keel eval --conversations`: follow-up questions retrieved as asked, as Keel rewrites them from
the conversation, and as a person rewrote them.

The dataset is a BEIR folder whose `conversations.jsonl` holds one follow-up turn per line with the
turns before it (CANARD/QuAC's layout: `history` of {question, answer}, the raw `question`, the
human standalone `rewrite`). Each turn runs through QueryWorkflow with `answer=False` in the default
pipeline (hybrid + re-score) in four ways:

- `followup`: the raw follow-up, as a system without history sees it;
- `rewrite`: Keel's rewrite (`conversations.rewrite`) over the dataset's history, whose answers are
  the dataset's own (the CANARD protocol: every system is given the same history);
- `rewrite_own`: Keel's rewrite over the answers Keel itself gave to the earlier turns, each turn
  answered in order, as a live conversation runs (what a user of Keel gets);
- `rewrite_own_titled`: the same, in a conversation titled with the topic the asker saw (the
  page and section title): QuAC's askers knew it, and their first questions lean on it ("when did
  Berry die?"), which no history can supply; a client that titles its conversations gives Keel
  the same;
- `gold_rewrite`: the human rewrite.

The gap closed is (rewrite − followup) / (gold_rewrite − followup). Only turns with judgements are
scored; the rest are still asked in `rewrite_own`, because their answers are history for later ones.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis
from temporalio.client import Client

from app.query import run_query
from contracts.query import QueryInput, QueryOutput
from conversations.history import said_something
from conversations.rewrite import Exchange, Rewrite, rewrite
from evaluation.beir import load_split
from evaluation.run import ensure_ingested, eval_tenant
from keel.config import Settings
from keel.errors import DatasetNotFound, KeelError
from retrieval.metrics import summarise
from stores.query_state import final_ranking

VARIANTS = ("followup", "rewrite", "rewrite_own", "rewrite_own_titled", "gold_rewrite")
UNANSWERED = ("i don't know", "cannotanswer")  # how the dataset writes a turn nobody could answer


@dataclass(frozen=True, kw_only=True)
class Turn:
    qid: str
    conversation_id: str
    number: int  # 1-based question number in the dialog
    history: list[Exchange]
    question: str
    gold_rewrite: str
    topic: str = ""  # what the asker was shown the dialog is about


@dataclass
class Measured:
    runs: dict[str, list[str]] = field(default_factory=dict)  # query id -> Keel doc ids, best first
    latencies: list[float] = field(default_factory=list)
    rewrites: dict[str, str] = field(default_factory=dict)  # query id -> the standalone question


def load_conversations(folder: Path) -> dict[str, list[Turn]]:
    """Conversation id -> its follow-up turns in order."""
    path = folder / "conversations.jsonl"
    if not path.is_file():
        raise DatasetNotFound(f"no conversations.jsonl in {folder}: --conversations needs dialogs with history")
    found: dict[str, list[Turn]] = {}
    with open(path) as f:
        for line in f:
            row = json.loads(line)
            turn = Turn(
                qid=str(row["_id"]),
                conversation_id=str(row["conversation_id"]),
                number=int(row["turn"]),
                history=[_exchange(h["question"], h["answer"]) for h in row["history"]],
                question=row["question"],
                gold_rewrite=row["rewrite"],
                topic=": ".join(t for t in (row.get("page_title"), row.get("section_title")) if t),
            )
            found.setdefault(turn.conversation_id, []).append(turn)
    return {cid: sorted(turns, key=lambda t: t.number) for cid, turns in found.items()}


def _exchange(question: str, answer: str) -> Exchange:
    said = answer.strip().lower().rstrip(".") not in UNANSWERED and bool(answer.strip())
    return Exchange(question=question, answer=answer, answered=said)


def gap_closed(followup: float, rewrite: float, gold: float) -> float:
    """The share of the gap between the raw follow-up and the human rewrite that Keel's closes."""
    return (rewrite - followup) / (gold - followup) if gold > followup else 0.0


async def evaluate_conversations(
    client: Client, settings: Settings, r: redis.Redis, folder: Path, out_dir: Path, concurrency: int = 8
) -> dict[str, dict[str, float]]:
    tenant = eval_tenant(folder)
    mapping = await ensure_ingested(client, settings, r, folder, tenant)
    qrels = load_split(folder, "test").qrels
    dialogs = load_conversations(folder)
    judged = sum(1 for turns in dialogs.values() for t in turns if t.qid in qrels)
    print(f"{len(dialogs)} conversations, {judged} judged follow-up turns", flush=True)
    gate = asyncio.Semaphore(concurrency)

    errors: list[str] = []

    async def ask(inp: QueryInput) -> tuple[QueryOutput | None, float]:
        """The answer and its ms, or None where Keel refused the question (counted apart)."""
        async with gate:
            started = time.perf_counter()
            try:
                out = await run_query(client, settings, inp)
            except KeelError as exc:
                errors.append(f"{exc.code}: {inp.question[:80]}")
                return None, 0.0
            return out, (time.perf_counter() - started) * 1000

    def query(text: str, written: Rewrite | None = None, answer: bool = False) -> QueryInput:
        inp = QueryInput(request_id=uuid.uuid4().hex, tenant=tenant, groups=[], question=text, answer=answer)
        if written is not None:
            inp.question, inp.search_text = written.question, written.search
        return inp

    results: dict[str, dict[str, float]] = {}
    samples: dict[str, dict[str, str]] = {}
    for variant in VARIANTS:
        measured = Measured()
        if variant.startswith("rewrite_own"):
            titled = variant.endswith("titled")
            await asyncio.gather(
                *(_own(ask, query, r, tenant, turns, qrels, measured, titled) for turns in dialogs.values())
            )
        else:
            turns = [t for ts in dialogs.values() for t in ts if t.qid in qrels]
            await asyncio.gather(*(_one(ask, query, r, tenant, t, variant, measured) for t in turns))
        beir = {q: [mapping.get(d, d) for d in docs] for q, docs in measured.runs.items()}
        results[variant] = summarise(beir, qrels)
        lat = sorted(measured.latencies)
        results[variant]["p50_ms"] = lat[len(lat) // 2] if lat else 0.0
        samples[variant] = measured.rewrites
        print(_row(variant, results[variant]), flush=True)
    if errors:  # a refused question scores zero, so the figures above are not flattered
        print(f"{len(errors)} questions refused, e.g. {errors[0]}", flush=True)
    results["refused"] = {"questions": float(len(errors))}
    results["gap_closed"] = {
        v: gap_closed(results["followup"]["ndcg@10"], results[v]["ndcg@10"], results["gold_rewrite"]["ndcg@10"])
        for v in ("rewrite", "rewrite_own", "rewrite_own_titled")
    }
    write_report(results, samples, dialogs, folder.resolve().name, out_dir)
    return results


async def _one(
    ask: Callable[[QueryInput], Awaitable[tuple[QueryOutput | None, float]]],
    query: Callable[..., QueryInput],
    r: redis.Redis,
    tenant: str,
    turn: Turn,
    variant: str,
    measured: Measured,
) -> None:
    if variant == "followup":
        inp = query(turn.question)
    elif variant == "gold_rewrite":
        inp = query(turn.gold_rewrite)
    else:
        written = rewrite(turn.question, turn.history)
        inp = query(turn.question, written)
        measured.rewrites[turn.qid] = written.question
    out, ms = await ask(inp)
    if out is not None:
        measured.latencies.append(ms)
        measured.runs[turn.qid] = [s.doc_id for s in final_ranking(r, tenant, inp.request_id, out.ranking)]


async def _own(
    ask: Callable[[QueryInput], Awaitable[tuple[QueryOutput | None, float]]],
    query: Callable[..., QueryInput],
    r: redis.Redis,
    tenant: str,
    turns: list[Turn],
    qrels: dict[str, dict[str, int]],
    measured: Measured,
    titled: bool,
) -> None:
    """One conversation as it runs live: every turn answered by Keel, in order, and each follow-up
    rewritten over Keel's own earlier answers (and the conversation's title, when `titled`)."""
    topic = turns[0].topic if titled else ""
    history: list[Exchange] = []
    for turn in turns:
        while len(history) < len(turn.history):  # the first question, and any the dataset skipped
            earlier = turn.history[len(history)].question
            out, _ = await ask(query(earlier, rewrite(earlier, history, topic=topic), answer=True))
            history.append(_exchange_of(earlier, out))
        written = rewrite(turn.question, history, topic=topic)
        inp = query(turn.question, written, answer=True)
        out, ms = await ask(inp)
        if turn.qid in qrels and out is not None:
            measured.latencies.append(ms)
            measured.rewrites[turn.qid] = written.question
            # An answered query's state holds the rankings it used: re-scored, else retrieval's.
            ranked = final_ranking(r, tenant, inp.request_id, "rerank") or final_ranking(
                r, tenant, inp.request_id, "retrieve"
            )
            measured.runs[turn.qid] = [s.doc_id for s in ranked]
        history.append(_exchange_of(turn.question, out))


def _exchange_of(question: str, out: QueryOutput | None) -> Exchange:
    if out is None:  # refused: nothing was said
        return Exchange(question=question, answer="", answered=False)
    return Exchange(question=question, answer=out.answer, answered=said_something(out))


def _row(label: str, m: dict[str, float]) -> str:
    return (
        f"{label:<14} nDCG@10 {m['ndcg@10']:.4f}  R@10 {m['recall@10']:.4f}  R@100 {m['recall@100']:.4f}  "
        f"MRR@10 {m['mrr@10']:.4f}  (p50 {m['p50_ms']:.0f} ms/query)"
    )


def write_report(
    results: dict[str, dict[str, float]],
    samples: dict[str, dict[str, str]],
    dialogs: dict[str, list[Turn]],
    name: str,
    out_dir: Path,
) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"eval-{name}-conversations"
    lines = [
        f"# Follow-up questions: {name}",
        "",
        "| question retrieved | nDCG@10 | Recall@10 | Recall@100 | MRR@10 | p50 ms/query |",
        "|---|---|---|---|---|---|",
    ]
    for variant in VARIANTS:
        m = results[variant]
        lines.append(
            f"| {variant} | {m['ndcg@10']:.4f} | {m['recall@10']:.4f} | {m['recall@100']:.4f} | "
            f"{m['mrr@10']:.4f} | {m['p50_ms']:.0f} |"
        )
    gaps = results["gap_closed"]
    closed = ", ".join(f"{v} {g:.2f}" for v, g in gaps.items())
    lines += ["", f"Share of the gap from the raw follow-up to the human rewrite closed: {closed}.", ""]
    lines += ["## Rewrites (first five turns)", "", "| follow-up | Keel's rewrite | human rewrite |", "|---|---|---|"]
    turns = {t.qid: t for ts in dialogs.values() for t in ts}
    for qid, written in list(samples["rewrite"].items())[:5]:
        lines.append(f"| {turns[qid].question} | {written} | {turns[qid].gold_rewrite} |")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2))
    return stem.with_suffix(".md")
