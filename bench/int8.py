"""`make bench-int8`: the int8 encoder's quality gate and its speed, against the fp32 model.

Both encoders embed every document of each dataset (title, then text, windowed as ingestion does)
and every judged question; dense retrieval by cosine is scored with nDCG@10 and Recall@10. Dense
alone, with no BM25 and no re-scoring, is where an encoder's loss shows undiluted. SciFact is the
retrieval set; SQuAD's part is what the answer metrics read (a question finds its paragraph or its
answer cannot be right). The gate: int8 ships as the default only if it loses at most 0.005
nDCG@10 on each. Speed is the same texts through each model alone, same threads, side by side.
Last lines: `<dataset>_ndcg10_fp32=`, `<dataset>_ndcg10_int8=`, `<dataset>_ndcg10_loss=` per
dataset, `fp32_docs_per_s=`, `int8_docs_per_s=`, `int8_gate=pass|fail`.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from encoders.dense import DenseEncoder, embedding_text
from encoders.registry import Encoders
from evaluation.beir import corpus, load_split
from index.active import DEFAULT_ENCODER, INT8_ENCODER, encoder_catalog
from keel.config import Settings
from retrieval.metrics import summarise

GATE = 0.005


def dense_scores(encoder: DenseEncoder, folder: Path, limit: int | None) -> tuple[dict[str, float], float, int]:
    """nDCG@10 and Recall@10 of dense retrieval over the folder's test split, and the documents
    per second the encoder embedded the corpus at."""
    split = load_split(folder, "test")
    docs = list(corpus(folder))
    if limit is not None:  # a quick look: the judged documents first, then others up to `limit`
        judged = {d for rels in split.qrels.values() for d in rels}
        docs = [d for d in docs if d[0] in judged] + [d for d in docs if d[0] not in judged]
        docs = docs[:limit]
    texts = [embedding_text(title, [], text) for _, title, text in docs]
    start = time.perf_counter()
    vectors = np.vstack([encoder.embed(texts[i : i + 64]) for i in range(0, len(texts), 64)])
    rate = len(texts) / (time.perf_counter() - start)
    ids = [d for d, _, _ in docs]
    runs = {}
    for qid, question in split.queries.items():
        scores = vectors @ encoder.embed_query(question)
        runs[qid] = [ids[i] for i in np.argsort(-scores)[:100]]
    return summarise(runs, split.qrels), rate, len(texts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--datasets",
        type=Path,
        nargs="+",
        default=[Path("../shared/datasets/scifact"), Path("../shared/datasets/squad2_dev_part")],
    )
    parser.add_argument("--limit", type=int, default=None, help="at most N documents a dataset (judged ones first)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    settings = Settings()
    catalog = encoder_catalog(settings)
    encoders = Encoders(args.threads, settings.embed_batch_size, settings.data_dir / "models")
    fp32, int8 = encoders.get(catalog[DEFAULT_ENCODER]), encoders.get(catalog[INT8_ENCODER])
    print(f"threads {args.threads}; batch {settings.embed_batch_size}; fp32 {catalog[DEFAULT_ENCODER].path}")
    lines: list[str] = []
    losses: list[float] = []
    rates: dict[str, list[float]] = {"fp32": [], "int8": []}
    for folder in args.datasets:
        name = folder.name.split("_")[0]
        got = {}
        for label, encoder in (("fp32", fp32), ("int8", int8)):
            metrics, rate, n = dense_scores(encoder, folder, args.limit)
            got[label] = metrics
            rates[label].append(rate)
            print(
                f"{name:<8} {label}: nDCG@10 {metrics['ndcg@10']:.4f}  Recall@10 {metrics['recall@10']:.4f}  "
                f"{rate:6.2f} docs/s over {n} documents",
                flush=True,
            )
        loss = got["fp32"]["ndcg@10"] - got["int8"]["ndcg@10"]
        losses.append(loss)
        lines += [
            f"{name}_ndcg10_fp32={got['fp32']['ndcg@10']:.4f}",
            f"{name}_ndcg10_int8={got['int8']['ndcg@10']:.4f}",
            f"{name}_ndcg10_loss={loss:.4f}",
        ]
    fp32_rate, int8_rate = float(np.mean(rates["fp32"])), float(np.mean(rates["int8"]))
    print(f"int8 embeds {int8_rate / fp32_rate:.2f}x as many documents a second as fp32")
    print("\n".join(lines))
    print(f"fp32_docs_per_s={fp32_rate:.2f}")
    print(f"int8_docs_per_s={int8_rate:.2f}")
    print(f"int8_gate={'pass' if max(losses) <= GATE else 'fail'}")


if __name__ == "__main__":
    main()
