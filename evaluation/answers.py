"""`keel eval --answers`: how good the answers are, not only the retrieval under them.

For a dataset with an `answers.jsonl` (SQuAD's shape: `answers`, `is_impossible`, `context_id`),
every question runs through QueryWorkflow as a user's would (the default pipeline, answers on).
Answerable questions: the share of answers that contain a gold answer, token F1 against the best
gold answer (SQuAD's normalisation: lower case, no punctuation or articles), whether a cited
passage is the gold one, and the share wrongly declined. Unanswerable questions: the share the
system declines (no sources, a clarifying question, or an explicit "the documents don't say").
For all: the share of answer sentences their citations support. Split by route, provider and
prompt id. Citation markers ("[2]") are taken out of an answer before it is scored.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import string
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import redis
from temporalio.client import Client

from app.query import build_query, run_query
from contracts.query import QueryOutput
from evaluation.beir import load_queries
from generation.grounding import REF, SENTENCE
from keel.config import Settings
from keel.errors import DatasetNotFound

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_CITATION = re.compile(r"(?<!\s)\s*\[\d+\]")  # from a run of spaces' start: linear
# An answer that says the sources do not hold the answer, in the words answerers use for it.
_DECLINE = re.compile(
    r"(?i)\b(the (documents|sources|context|passages) (do(es)? not|don't|doesn't) (say|mention|contain|answer|state)"
    r"|no (answer|information) (is |was )?(given|found|available)|cannot (be )?answer(ed)?|not enough information)"
)


@dataclass(frozen=True, kw_only=True)
class Gold:
    question_id: str
    answers: list[str]
    impossible: bool
    context_id: str


@dataclass(kw_only=True)
class Scored:
    question_id: str
    impossible: bool
    declined: bool
    contains: bool
    f1: float
    cited_gold: bool
    supported_rate: float
    route: str
    provider: str
    prompt_id: str
    citations_from: str = ""  # model | attributed | mixed | none
    ungrounded: bool = False  # flagged: a claim no passage supports
    silent_uncited: bool = False  # an answer with no accepted citation and no flag (ungrounded, unverified) saying so
    first_token_ms: float = 0.0
    total_ms: float = 0.0  # the question's whole round trip, as the caller saw it


def normalize(text: str) -> str:
    """SQuAD's answer normalisation."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    return " ".join(_ARTICLES.sub(" ", text).split())


def f1(prediction: str, gold: str) -> float:
    p, g = normalize(prediction).split(), normalize(gold).split()
    common = sum((Counter(p) & Counter(g)).values())
    if not p or not g or common == 0:
        return float(p == g)
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def declined(out: QueryOutput) -> bool:
    return out.no_sources or out.clarifying or bool(_DECLINE.search(out.answer))


def score(gold: Gold, out: QueryOutput, beir_id_of: dict[str, str], total_ms: float = 0.0) -> Scored:
    text = _CITATION.sub("", out.answer)
    said_no = declined(out)
    answered = not said_no
    ungrounded = "ungrounded" in out.flags
    flagged = ungrounded or "unverified" in out.flags
    norm = normalize(text)
    return Scored(
        question_id=gold.question_id,
        impossible=gold.impossible,
        declined=said_no,
        contains=answered and any(normalize(a) and normalize(a) in norm for a in gold.answers),
        f1=max((f1(text, a) for a in gold.answers), default=0.0) if answered else 0.0,
        cited_gold=any(beir_id_of.get(c.doc_id, c.doc_id) == gold.context_id for c in out.citations),
        supported_rate=out.supported_rate,
        route=out.route,
        provider=out.provider,
        prompt_id=out.prompt_id,
        citations_from=out.citations_from,
        ungrounded=ungrounded,
        silent_uncited=answered and not out.citations and not flagged,
        first_token_ms=out.first_token_ms,
        total_ms=total_ms,
    )


def load_gold(folder: Path) -> list[Gold]:
    out = []
    with open(folder / "answers.jsonl") as f:
        for line in f:
            row = json.loads(line)
            if "is_impossible" not in row:
                continue  # another dataset's answers file (SciFact's verdicts): not answer strings
            out.append(
                Gold(
                    question_id=str(row["_id"]),
                    answers=[str(a) for a in row.get("answers") or []],
                    impossible=bool(row["is_impossible"]),
                    context_id=str(row.get("context_id", "")),
                )
            )
    return out


def summary(rows: Iterable[Scored]) -> dict[str, float]:
    rows = list(rows)
    ans = [r for r in rows if not r.impossible]
    imp = [r for r in rows if r.impossible]
    answered = [r for r in rows if not r.declined]

    def share(items: list[Scored], key: str) -> float:
        return sum(float(getattr(r, key)) for r in items) / len(items) if items else 0.0

    return {
        "questions": float(len(rows)),
        "answerable": float(len(ans)),
        "unanswerable": float(len(imp)),
        "answer_contains": share(ans, "contains"),
        "answer_f1": share(ans, "f1"),
        "cited_gold": share(ans, "cited_gold"),
        "abstain_answerable": share(ans, "declined"),
        "abstain_unanswerable": share(imp, "declined"),
        "supported": share(answered, "supported_rate"),
        "model_citations": _share_from(answered, ("model", "mixed")),
        "attributed_citations": _share_from(answered, ("attributed", "mixed")),
        "ungrounded": share(answered, "ungrounded"),
        "silent_uncited": float(sum(r.silent_uncited for r in rows)),
        "first_token_p50_ms": _quantile([r.first_token_ms for r in rows if r.first_token_ms], 0.5),
        "first_token_p95_ms": _quantile([r.first_token_ms for r in rows if r.first_token_ms], 0.95),
        "total_p50_ms": _quantile([r.total_ms for r in rows if r.total_ms], 0.5),
        "total_p95_ms": _quantile([r.total_ms for r in rows if r.total_ms], 0.95),
    }


def _share_from(rows: list[Scored], sources: tuple[str, ...]) -> float:
    return sum(r.citations_from in sources for r in rows) / len(rows) if rows else 0.0


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run_answers(
    client: Client,
    settings: Settings,
    r: redis.Redis,
    tenant: str,
    folder: Path,
    concurrency: int = 8,
    limit: int | None = None,
    offset: int = 0,
) -> list[tuple[Gold, QueryOutput, float]]:
    """Every question (or a fixed sample of `limit`: the same ones each run, by a hash of their
    ids, after the first `offset` of that order: a fresh sample to label), each answer with the
    milliseconds its round trip took."""
    questions = load_queries(folder)
    gold = [g for g in load_gold(folder) if g.question_id in questions]
    if not gold:
        raise DatasetNotFound(f"{folder}/answers.jsonl holds no gold answers (SQuAD's shape: answers, is_impossible)")
    if limit is not None:
        gold = sorted(gold, key=lambda g: hashlib.sha256(g.question_id.encode()).hexdigest())[offset : offset + limit]
    gate = asyncio.Semaphore(concurrency)
    results: list[tuple[Gold, QueryOutput, float]] = []

    async def one(g: Gold) -> None:
        inp = build_query(settings, r, uuid.uuid4().hex, tenant, [], questions[g.question_id])
        async with gate:
            asked = time.monotonic()
            out = await run_query(client, settings, inp)
            results.append((g, out, (time.monotonic() - asked) * 1000))

    started = time.monotonic()
    await asyncio.gather(*(one(g) for g in gold))
    print(f"{len(results)} questions answered in {time.monotonic() - started:.0f} s", flush=True)
    return results


def report(scored: list[Scored], name: str, out_dir: Path) -> dict[str, dict[str, float]]:
    """Overall and per (route, provider, prompt) figures, written beside the retrieval report."""
    groups: dict[str, list[Scored]] = {"all": scored}
    for s in scored:
        groups.setdefault(f"{s.route or '-'} / {s.provider or '-'} / {s.prompt_id or '-'}", []).append(s)
    table = {k: summary(v) for k, v in groups.items()}
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"answers-{name}"
    lines = [
        f"# Answer quality: {name}",
        "",
        "| route / provider / prompt | questions | contains gold | F1 | cites gold | declines unanswerable "
        "| declines answerable | supported sentences |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for k, m in table.items():
        lines.append(
            f"| {k} | {m['questions']:.0f} | {m['answer_contains']:.3f} | {m['answer_f1']:.3f} | {m['cited_gold']:.3f} "
            f"| {m['abstain_unanswerable']:.3f} | {m['abstain_answerable']:.3f} | {m['supported']:.3f} |"
        )
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    stem.with_suffix(".json").write_text(
        json.dumps({"summary": table, "questions": [asdict(s) for s in scored]}, indent=1)
    )
    _chart(table["all"], name, stem.with_suffix(".png"))
    return table


def write_citations(answered: list[tuple[Gold, QueryOutput, float]], beir_id_of: dict[str, str], path: Path) -> None:
    """Each cited sentence of each answer with the paragraph it cites and where the citation came
    from: the sample a person labels (does the paragraph support the sentence?) for the
    citation precision `make bench-grounding --labels` reports."""
    with path.open("w") as f:
        for gold, out, _ in answered:
            for sentence, ref in cited_sentences(out.answer):
                cited = next((c for c in out.citations if c.ref == ref), None)
                if cited is None:
                    continue
                row = {
                    "question_id": gold.question_id,
                    "sentence": sentence,
                    "paragraph": beir_id_of.get(cited.doc_id, cited.doc_id),
                    "citations_from": out.citations_from,
                    "provider": out.provider,
                    # "unverified": the verifier's budget ran out before it was asked about some
                    # citation of this answer, so precision can be read for checked ones apart.
                    "answer_flags": sorted(out.flags),
                }
                f.write(json.dumps(row) + "\n")


def cited_sentences(answer: str) -> list[tuple[str, int]]:
    """(sentence without its markers, cited ref) for every citation in the answer."""
    out = []
    for piece in SENTENCE.split(answer):
        for ref in dict.fromkeys(int(r) for r in REF.findall(piece)):
            out.append((" ".join(REF.sub("", piece).split()), ref))
    return out


def _chart(m: dict[str, float], name: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ["answer_contains", "answer_f1", "cited_gold", "abstain_unanswerable", "abstain_answerable", "supported"]
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.bar(range(len(keys)), [m[k] for k in keys])
    ax.set_xticks(range(len(keys)), [k.replace("_", "\n") for k in keys], fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_title(f"Keel answers: {name}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


async def evaluate_answers(
    client: Client,
    settings: Settings,
    r: redis.Redis,
    folder: Path,
    out_dir: Path,
    limit: int | None = None,
    concurrency: int = 8,
    offset: int = 0,
) -> dict[str, dict[str, float]]:
    from evaluation.run import ensure_ingested, eval_tenant

    tenant = eval_tenant(folder)
    mapping = await ensure_ingested(client, settings, r, folder, tenant)
    answered = await run_answers(client, settings, r, tenant, folder, concurrency, limit, offset)
    scored = [score(g, out, mapping, ms) for g, out, ms in answered]
    table = report(scored, folder.resolve().name, out_dir)
    write_citations(answered, mapping, out_dir / f"answers-{folder.resolve().name}.citations.jsonl")
    for key, m in table.items():
        print(
            f"{key:<40} n {m['questions']:>5.0f}  contains {m['answer_contains']:.3f}  F1 {m['answer_f1']:.3f}  "
            f"cites gold {m['cited_gold']:.3f}  declines unanswerable {m['abstain_unanswerable']:.3f}  "
            f"declines answerable {m['abstain_answerable']:.3f}  supported {m['supported']:.3f}  "
            f"model citations {m['model_citations']:.3f}  attributed {m['attributed_citations']:.3f}  "
            f"ungrounded {m['ungrounded']:.3f}  silent uncited {m['silent_uncited']:.0f}  "
            f"first token p50/p95 {m['first_token_p50_ms']:.0f}/{m['first_token_p95_ms']:.0f} ms  "
            f"total p50/p95 {m['total_p50_ms']:.0f}/{m['total_p95_ms']:.0f} ms"
        )
    return table
