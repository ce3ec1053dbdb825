"""What protecting names does to retrieval, per form of the replacement: plain text, blank
placeholders (`<PERSON>`), keyed typed tokens (`PERSON_q7tm2kxa`), and tokens with the edge's
lookup of the names the documents hold, in questions (`token_known`) and in the documents too
(`token_consistent`), on an entity-centric set.

Questions and paragraphs are both protected (as Keel protects both): the same detector
(`guardrails.pii.Redactor`, the default entities) finds the spans once, and each form replaces
them. Retrieval is scored with BM25 (bm25s, Lucene's BM25 with English stop words and Snowball
stems, as Keel's) and with the default dense encoder (all-MiniLM-L6-v2, cosine), nDCG@10 over the
judged questions, and the share of questions with every gold paragraph in the top 10.

    python -m bench.pii_forms --dataset ../shared/datasets/hotpotqa_dev_part

Last lines: `pii_<form>_bm25_ndcg10=` and `pii_<form>_dense_ndcg10=` per form.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from evaluation.beir import check_dataset, corpus, load_split
from guardrails.pii import Redactor, Span
from guardrails.pseudonyms import Pseudonyms, name_candidates, tokens_in
from keel import offline  # noqa: F401 - before the models load
from keel.config import Settings
from keel.errors import DatasetNotFound

FORMS = ("plain", "placeholder", "token", "token_known", "token_consistent", "surrogate")
# Syllables of a keyed surrogate name: a name the encoder reads as a name ("Nabilek Zepodov"), the
# same for the same person, unrelated to who it stands for.
_ONSETS = "ka ve lo ri ma no sa te bi du fe go ha ji ku le mi na po ru si ta vo wi ya ze".split()  # noqa: SIM905
_CODAS = "ran del mor vin tas lek bor sim ket dov rus lan mir gat pel sor ven tam kor lis".split()  # noqa: SIM905


def protect(form: str, text: str, spans: list[Span], names: Pseudonyms) -> str:
    if form == "plain" or not spans:
        return text
    if form in ("token_known", "token_consistent"):
        form = "token"
    if form == "surrogate":  # people as keyed surrogate names, the other types as tokens
        out, at = [], 0
        for s in spans:
            value = text[s.start : s.end]
            out += [
                text[at : s.start],
                surrogate(names, value) if s.entity == "PERSON" else names.token(s.entity, value),
            ]
            at = s.end
        return "".join([*out, text[at:]])
    if form == "placeholder":
        out, at = [], 0
        for s in spans:
            out += [text[at : s.start], f"<{s.entity}>"]
            at = s.end
        return "".join([*out, text[at:]])
    return names.replace(text, spans).text


def surrogate(names: Pseudonyms, value: str) -> str:
    """A keyed two-word surrogate name for a person: syllables chosen by the person's token."""
    code = names.token("PERSON", value).encode()
    digest = hashlib.sha256(code).digest()

    def word(b: bytes) -> str:
        return (
            "".join(_ONSETS[x % len(_ONSETS)] for x in b[1 : 2 + b[0] % 2]) + _CODAS[b[3] % len(_CODAS)]
        ).capitalize()

    return f"{word(digest[:4])} {word(digest[4:8])}"


def known_names(text: str, names: Pseudonyms, held: set[str]) -> str:
    """`app.query._known_names` over a set of held tokens instead of the vault."""
    taken: list[tuple[int, int, str]] = []
    for a, b in name_candidates(text):
        token = names.token("PERSON", text[a:b])
        if token in held and all(b <= x or a >= y for x, y, _ in taken):
            taken.append((a, b, token))
    for a, b, token in sorted(taken, reverse=True):
        text = text[:a] + token + text[b:]
    return text


def ndcg10(ranked: list[str], rels: dict[str, int]) -> float:
    dcg = sum(1 / math.log2(i + 2) for i, d in enumerate(ranked[:10]) if d in rels)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(len(rels), 10)))
    return dcg / ideal if ideal else 0.0


def score(runs: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> tuple[float, float]:
    """Mean nDCG@10, and the share of questions with all gold paragraphs in the top 10."""
    if not qrels:
        raise SystemExit("no judged questions: nothing to score")
    nd = [ndcg10(runs.get(q, []), rels) for q, rels in qrels.items()]
    both = [all(d in runs.get(q, [])[:10] for d in rels) for q, rels in qrels.items()]
    return sum(nd) / len(nd), sum(both) / len(both)


def bm25_runs(ids: list[str], docs: list[str], queries: dict[str, str]) -> dict[str, list[str]]:
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    index = bm25s.BM25(k1=1.5, b=0.75)
    index.index(bm25s.tokenize(docs, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False)
    qids = list(queries)
    tokens = bm25s.tokenize([queries[q] for q in qids], stopwords="en", stemmer=stemmer, show_progress=False)
    found, _ = index.retrieve(tokens, k=10, show_progress=False)
    return {q: [ids[i] for i in row] for q, row in zip(qids, found, strict=True)}


def dense_runs(model: object, ids: list[str], docs: list[str], queries: dict[str, str]) -> dict[str, list[str]]:
    qids = list(queries)
    d = np.asarray(model.encode(docs, batch_size=64, normalize_embeddings=True))  # type: ignore[attr-defined]
    q = np.asarray(model.encode([queries[x] for x in qids], batch_size=64, normalize_embeddings=True))  # type: ignore[attr-defined]
    top = np.argsort(-(q @ d.T), axis=1)[:, :10]
    return {x: [ids[i] for i in row] for x, row in zip(qids, top, strict=True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=Path("../shared/datasets/hotpotqa_dev_part"))
    args = parser.parse_args()
    try:
        check_dataset(args.dataset)
    except DatasetNotFound as exc:
        sys.exit(exc.message)
    settings = Settings()
    rows = list(corpus(args.dataset))
    ids = [r[0] for r in rows]
    texts = [f"{title} {text}".strip() for _, title, text in rows]
    split = load_split(args.dataset, "test")
    qids = list(split.queries)
    started = time.monotonic()
    redactor = Redactor(settings.pii_entities, settings.pii_score_threshold, settings.pii_use_ner)
    doc_spans = redactor.find_many(texts)
    q_spans = redactor.find_many([split.queries[q] for q in qids])
    changed_docs = sum(1 for s in doc_spans if s) / len(texts)
    changed_qs = sum(1 for s in q_spans if s) / len(qids)
    print(
        f"{args.dataset.name}: {len(texts)} paragraphs ({changed_docs:.0%} changed), {len(qids)} questions "
        f"({changed_qs:.0%} changed); detection {time.monotonic() - started:.0f} s",
        flush=True,
    )
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(settings.embedding_model_path, device="cpu")
    names = Pseudonyms(b"bench-pii-forms-secret-0123456789")
    results: dict[str, dict[str, float]] = {}
    for form in FORMS:
        docs = [protect(form, t, s, names) for t, s in zip(texts, doc_spans, strict=True)]
        queries = {q: protect(form, split.queries[q], s, names) for q, s in zip(qids, q_spans, strict=True)}
        if form in ("token_known", "token_consistent"):  # as the edge does: names the documents hold
            held = {t for d in docs for t in tokens_in(d)}
            queries = {q: known_names(text, names, held) for q, text in queries.items()}
            if form == "token_consistent":  # and the documents too: one replacement per name everywhere
                docs = [known_names(d, names, held) for d in docs]
        bm25, bm25_both = score(bm25_runs(ids, docs, queries), split.qrels)
        dense, dense_both = score(dense_runs(model, ids, docs, queries), split.qrels)
        results[form] = {"bm25": bm25, "bm25_both": bm25_both, "dense": dense, "dense_both": dense_both}
        print(
            f"{form:<12} BM25 nDCG@10 {bm25:.4f} (both gold in top 10: {bm25_both:.3f})   "
            f"dense nDCG@10 {dense:.4f} (both: {dense_both:.3f})",
            flush=True,
        )
    out = Path("bench/results")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"pii-forms-{args.dataset.name}.json").write_text(json.dumps(results, indent=2))
    for form, m in results.items():
        print(f"pii_{form}_bm25_ndcg10={m['bm25']:.4f}")
        print(f"pii_{form}_dense_ndcg10={m['dense']:.4f}")


if __name__ == "__main__":
    main()
