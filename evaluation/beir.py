"""Loading a BEIR-format folder: corpus.jsonl, queries.jsonl and qrels (test or train split).

Two layouts are read: BEIR's own (`qrels/test.tsv`, `qrels/train.tsv`) and the flat one under
../shared/datasets (`qrels.tsv` for test, `qrels_train.tsv` plus `queries_all.jsonl` for train).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from keel.errors import DatasetNotFound


def check_dataset(folder: Path) -> Path:
    """The folder, if it holds a BEIR corpus; else a clear error instead of a traceback later."""
    if not (folder / "corpus.jsonl").is_file():
        raise DatasetNotFound(f"no corpus.jsonl in {folder}: point DATASET= (make) or --dataset at a BEIR folder")
    return folder


@dataclass
class Split:
    name: str
    queries: dict[str, str]  # query id -> text (only queries with judgements)
    qrels: dict[str, dict[str, int]]  # query id -> doc id -> relevance


def corpus(folder: Path) -> Iterator[tuple[str, str, str]]:
    """(doc id, title, text) per document."""
    with open(folder / "corpus.jsonl") as f:
        for line in f:
            doc = json.loads(line)
            yield str(doc["_id"]), (doc.get("title") or "").strip(), (doc.get("text") or "").strip()


def _qrels_path(folder: Path, split: str) -> Path:
    for candidate in (
        folder / "qrels" / f"{split}.tsv",
        folder / ("qrels.tsv" if split == "test" else f"qrels_{split}.tsv"),
    ):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"no {split} qrels in {folder} (qrels/{split}.tsv or qrels.tsv / qrels_{split}.tsv)")


def load_queries(folder: Path) -> dict[str, str]:
    """Every query of the folder, judged or not (id -> text)."""
    queries: dict[str, str] = {}
    for name in ("queries.jsonl", "queries_all.jsonl"):
        path = folder / name
        if not path.exists():
            continue
        with open(path) as f:
            for line in f:
                q = json.loads(line)
                queries.setdefault(str(q["_id"]), q["text"])
    return queries


def load_split(folder: Path, split: str) -> Split:
    qrels: dict[str, dict[str, int]] = {}
    with open(_qrels_path(folder, split)) as f:
        for row in csv.reader(f, delimiter="\t"):
            if not row or row[0] == "query-id":
                continue
            qid, did, score = row[0], row[1], int(row[2])
            if score > 0:
                qrels.setdefault(qid, {})[did] = score
    queries = {q: text for q, text in load_queries(folder).items() if q in qrels}
    missing = set(qrels) - set(queries)
    if missing:
        raise ValueError(f"{len(missing)} judged {split} queries have no text in {folder}")
    return Split(split, queries, {q: qrels[q] for q in queries})


def write_documents(folder: Path, out: Path) -> list[Path]:
    """One Markdown file per document (`# title`, then the text), named by its BEIR id."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for doc_id, title, text in corpus(folder):
        path = out / f"{doc_id}.md"
        body = f"# {title}\n\n{text}\n" if title else f"{text}\n"
        if not path.exists() or path.read_text() != body:
            path.write_text(body)
        paths.append(path)
    return paths
