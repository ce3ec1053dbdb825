"""`make bench-grounding`: fit the thresholds that decide whether a passage supports a sentence.

Data: SQuAD 2.0's dev part. Each answerable question and its gold answer make a claim the way an
answerer words it (the question's words with the answer in them); its gold paragraph supports
it, and the other paragraphs of the same article that do not contain the answer do not (hard
negatives: same topic, same names). The thresholds (`generation.grounding.Thresholds`) are chosen
on three articles as attribution uses them (of the paragraphs that pass, the best-scoring one is
cited), each claim tried with its gold paragraph among the candidates and without it: the most
coverage (claims cited with their gold paragraph) at a citation precision (citations that are the
gold paragraph, of all made) of at least `--precision`; then measured on the other three
articles, which were not looked at. Last lines: the fitted thresholds, then the shipped
thresholds' `grounding_precision=` and `grounding_coverage=` on the held-out articles.

`--labels FILE...` reads a person's labels of real answers' citations instead (precision by
provider and source). With `--verifier URL` (an OpenAI-compatible server, e.g. the one `make llm`
starts) it also puts every labelled citation to that model as the verifier does, once on the whole
passage and once on its evidence sentence, and prints how right the citations it says yes to are
and how many of the right ones it keeps: `verifier_whole_precision=`,
`verifier_evidence_precision=`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from encoders.registry import Encoders
from evaluation.answers import load_gold
from evaluation.beir import corpus, load_queries
from generation import facts
from generation.grounding import Thresholds, evidence, lexical_support, passage_sentences, reading
from generation.openai_compat import OpenAICompatProvider, ProviderConfig
from generation.verify import Verifier
from index.active import DEFAULT_ENCODER, encoder_catalog
from keel.config import Settings

FIT = ("Normans", "1973_oil_crisis", "Harvard_University")
NOT_A_MODEL = ("extractive", "passage", "cache")  # answerers whose sentences are the passages' own
HELD_OUT = ("Scottish_Parliament", "Imperialism", "Packet_switching")
_WH = re.compile(r"(?i)^(what|which|who|whom|whose|when|where|why|how( many| much| long| often)?)\b\s*")


@dataclass(frozen=True)
class Pair:
    claim: int  # which claim (pairs of one claim are consecutive)
    article: str
    lexical: float
    dense: float
    holds_facts: bool  # the paragraph holds the claim's numbers, negations and names
    supports: bool


def claim(question: str, answer: str) -> str:
    """A declarative-ish sentence: the question's words with the answer where its wh-word was."""
    q = question.strip().rstrip("?").strip()
    # A colon between them, as in "...was elected in: 1999.", so the answer does not run into the
    # question's last word as one name ("Scottish Parliament Stage 3").
    return f"{_WH.sub('', q)}: {answer}." if _WH.match(q) else f"{q}: {answer}."


def pairs(folder: Path, encoders: Encoders, settings: Settings) -> list[Pair]:
    paragraphs = {doc_id: text for doc_id, _, text in corpus(folder)}
    article_of = {doc_id: doc_id.rsplit("_", 1)[0] for doc_id in paragraphs}
    questions = load_queries(folder)
    rows = [
        (claim(questions[g.question_id], g.answers[0]), g.context_id, g.answers, questions[g.question_id])
        for g in load_gold(folder)
        if not g.impossible and g.answers and article_of.get(g.context_id) in FIT + HELD_OUT
    ]
    encoder = encoders.get(encoder_catalog(settings)[DEFAULT_ENCODER])
    sentences = {doc_id: passage_sentences(text) for doc_id, text in paragraphs.items()}
    sentence_vectors = {}
    for doc_id, article in article_of.items():
        if article in FIT + HELD_OUT:
            sentence_vectors[doc_id] = encoder.embed(sentences[doc_id])
    claim_vectors = encoder.embed([c for c, _, _, _ in rows])
    held = {doc_id: facts.source(text) for doc_id, text in paragraphs.items() if article_of[doc_id] in FIT + HELD_OUT}
    out = []
    for n, ((text, gold, answers, question), vector) in enumerate(zip(rows, claim_vectors, strict=True)):
        article = article_of[gold]
        stated = facts.claimed(text, question)
        for doc_id in (d for d, a in article_of.items() if a == article):
            has_answer = any(ans.lower() in paragraphs[doc_id].lower() for ans in answers)
            if doc_id != gold and has_answer:
                continue  # another paragraph with the answer: neither a clean positive nor a negative
            dense = float(np.max(sentence_vectors[doc_id] @ vector))
            holds = not stated.missing_from(held[doc_id])
            out.append(Pair(n, article, lexical_support(text, paragraphs[doc_id]), dense, holds, doc_id == gold))
    return out


def rates(rows: list[Pair], t: Thresholds, check_facts: bool = True) -> tuple[float, float]:
    return _rates(_arrays(rows), t, check_facts)


def _arrays(rows: list[Pair]) -> tuple[np.ndarray, ...]:
    starts = np.array([i for i, r in enumerate(rows) if i == 0 or rows[i - 1].claim != r.claim])
    return (
        np.array([r.lexical for r in rows]),
        np.array([r.dense for r in rows]),
        np.array([r.supports for r in rows], dtype=bool),
        np.array([r.holds_facts for r in rows], dtype=bool),
        starts,
    )


def _rates(arrays: tuple[np.ndarray, ...], t: Thresholds, check_facts: bool = True) -> tuple[float, float]:
    """(citation precision, coverage), as attribution uses the thresholds: of the passages that
    pass for a claim the best-scoring one is cited. Each claim is tried twice: with its gold
    paragraph among the candidates (it should cite it) and without it (as when a model answers
    from what it knows and retrieval found only the topic: it should cite nothing). Precision: of
    all citations made, the share that are the gold paragraph; coverage: the share of claims
    cited with their gold paragraph when it was there."""
    lexical, dense, supports, holds_facts, starts = arrays
    passes = (lexical >= t.lexical) | ((dense >= t.dense) & (lexical >= t.dense_lexical))
    if check_facts:
        passes &= holds_facts
    score = np.where(passes, lexical + dense, -np.inf)
    best = np.maximum.reduceat(score, starts)
    gold_score = np.maximum.reduceat(np.where(supports, score, -np.inf), starts)
    right = np.isfinite(best) & (gold_score >= best)
    without_gold = np.maximum.reduceat(np.where(supports, -np.inf, score), starts)
    citations = int(np.isfinite(best).sum()) + int(np.isfinite(without_gold).sum())
    return (int(right.sum()) / citations if citations else 1.0), int(right.sum()) / len(starts)


def fit(rows: list[Pair], precision: float) -> Thresholds:
    arrays = _arrays(rows)
    grid = np.round(np.arange(0.2, 0.96, 0.02), 2)
    best, best_recall = Thresholds(), -1.0
    for lexical, dense, dense_lexical in itertools.product(grid, grid, grid):
        if dense_lexical > lexical:
            continue
        t = Thresholds(lexical=float(lexical), dense=float(dense), dense_lexical=float(dense_lexical))
        p, r = _rates(arrays, t)
        if p >= precision and r > best_recall:
            best, best_recall = t, r
    return best


def _labelled(paths: list[Path]) -> list[dict[str, Any]]:
    """The rows of the label files a person has labelled (`supports` set)."""
    rows = [json.loads(line) for path in paths for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if isinstance(r.get("supports"), bool)]


def labelled_precision(paths: list[Path]) -> None:
    """A person's labels of real answers' citations: the share the cited passage supports, by
    where the citations came from and by provider; `citation_precision=` counts the model's
    answers only (the extractive answerer's and the passage fallback's cite their own words)."""
    rows = _labelled(paths)
    for key in ("citations_from", "provider"):
        for value in sorted({str(r.get(key)) for r in rows}):
            some = [r for r in rows if str(r.get(key)) == value]
            print(f"{key} {value}: {sum(r['supports'] for r in some)} of {len(some)} supported")
    model = [r for r in rows if r.get("provider") not in NOT_A_MODEL]
    flagged = [r for r in model if "answer_flags" in r]  # rows written since the flags were
    for name, some in (
        ("in answers the verifier finished", [r for r in flagged if "unverified" not in r["answer_flags"]]),
        ("in answers flagged unverified", [r for r in flagged if "unverified" in r["answer_flags"]]),
    ):
        if some:
            print(f"model citations {name}: {sum(r['supports'] for r in some)} of {len(some)} supported")
    print(f"labelled_citations={len(model)}")
    print(f"citation_precision={sum(r['supports'] for r in model) / len(model) if model else 0.0:.3f}")


def replay_verifier(paths: list[Path], folder: Path, base_url: str) -> None:
    """The labelled model citations put to a verifier again: whole passage against evidence sentence."""
    paragraphs = {doc_id: text for doc_id, _, text in corpus(folder)}
    questions = load_queries(folder)
    rows = [r for r in _labelled(paths) if r.get("provider") not in NOT_A_MODEL]
    verifier = Verifier(OpenAICompatProvider(ProviderConfig(name="verifier", base_url=base_url, model="any")), 0.0)
    right = sum(r["supports"] for r in rows)
    for name, shown in (("whole", lambda claim, text: text), ("evidence", evidence)):
        said_yes = kept_right = unanswered = 0
        for r in rows:
            sentence = reading(r["sentence"], questions.get(r["question_id"], ""))  # as grounding reads it
            passage = paragraphs[r["paragraph"]]
            verdict = verifier.ask(sentence, shown(sentence, passage), timeout_s=30.0)
            unanswered += verdict is None
            if verdict:
                said_yes += 1
                kept_right += r["supports"]
        print(
            f"{name:>8}: yes to {said_yes} of {len(rows)} ({kept_right} right; {kept_right} of the {right} "
            f"right ones kept), {unanswered} unanswered"
        )
        print(f"verifier_{name}_precision={kept_right / said_yes if said_yes else 0.0:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=Path("../shared/datasets/squad2_dev_part"))
    parser.add_argument("--precision", type=float, default=0.9, help="the precision the fit must keep")
    parser.add_argument(
        "--labels",
        type=Path,
        nargs="+",
        default=None,
        help="a labelled sample of real answers' citations (`keel eval --answers` writes the rows; a "
        "person adds `supports`): prints its citation precision, overall and by where citations came from",
    )
    parser.add_argument(
        "--verifier",
        default="",
        help="with --labels: an OpenAI-compatible base URL (e.g. http://127.0.0.1:8093/v1) whose model "
        "reads each labelled citation again, on the whole passage and on its evidence sentence",
    )
    args = parser.parse_args()
    if args.labels is not None:
        labelled_precision(args.labels)
        if args.verifier:
            replay_verifier(args.labels, args.dataset, args.verifier)
        return
    settings = Settings()
    rows = pairs(args.dataset, Encoders(threads=settings.torch_threads, batch_size=32), settings)
    fitted = [r for r in rows if r.article in FIT]
    held = [r for r in rows if r.article in HELD_OUT]
    print(f"pairs: {len(fitted)} to fit ({sum(r.supports for r in fitted)} supporting), {len(held)} held out")
    t = fit(fitted, args.precision)
    for name, t_ in (("shipped", Thresholds()), ("fitted", t)):
        (pf, rf), (ph, rh) = rates(fitted, t_), rates(held, t_)
        print(
            f"{name:>8} {t_}: fit precision {pf:.3f} coverage {rf:.3f}; held out precision {ph:.3f} coverage {rh:.3f}"
        )
    ph, rh = rates(held, Thresholds(), check_facts=False)
    print(f"shipped without the fact check: held out precision {ph:.3f} coverage {rh:.3f}")
    lexical_only = Thresholds(lexical=t.lexical, dense=2.0, dense_lexical=t.lexical)
    ph, rh = rates(held, lexical_only)
    print(f"lexical alone at {t.lexical}: held out precision {ph:.3f} coverage {rh:.3f}")
    ph, rh = rates(held, Thresholds())
    print(f"lexical={t.lexical}")
    print(f"dense={t.dense}")
    print(f"dense_lexical={t.dense_lexical}")
    print(f"grounding_precision={ph:.3f}")
    print(f"grounding_coverage={rh:.3f}")


if __name__ == "__main__":
    main()
