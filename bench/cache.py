"""`make bench-cache`: the answer caches through the HTTP API on the real stack.

    python -m bench.cache [--pairs FILE.jsonl] [--limit N] [--clients K]

A private stack is started, the sample corpus is indexed for two tenants, and `python -m
infra.server` (what `make run` starts) serves them with the caches on. For each labelled pair
{"q1", "q2", "label"} (default: the Quora pairs' development half, `--limit` of them, spread
evenly over the file) it asks q1 (a miss: answered and kept), asks q1 again until it comes from
the exact cache (its latency is an exact hit's), then asks q2: a duplicate (label 1) answered
from a cache is a hit, a non-duplicate answered from one is a false hit. Each pair is asked in a
scope of its own (a filter only it uses), so a question can only match its own pair's, as the
issue's protocol reads. Then:
- cross scope: the cached questions asked again with a key of other groups and by another tenant
  with the same documents: any cached answer there is a cross-scope hit;
- stale: the document cited most is changed and re-ingested, and every question whose answer
  cited it is asked again: an answer citing a version that is no longer published is stale.
The miss overhead is what the lookups added to each miss (`timings_ms.cache`: the edge's exact
lookup and the workflow's semantic one). Last lines: `exact_hit_p95_ms=`, `semantic_hit_p95_ms=`,
`miss_overhead_p95_ms=`, `semantic_hit_rate=`, `semantic_false_hit_rate=`, `stale_answers=`,
`cross_scope_hits=`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from app.ingest import stage, start_batch
from bench.query import ingest, pct, private_stack, start_api
from gateway.keys import QUERY, KeyStore
from index.catalog import Catalog
from keel import offline  # noqa: F401
from stores import redis as redis_store
from temporal.client import connect

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "corpus"
DEFAULT_PAIRS = Path("../shared/datasets/qqp_pairs_dev/pairs.jsonl")
TENANT, OTHER = "bench-cache", "bench-cache-other"


@dataclass
class Tally:
    misses: list[float] = field(default_factory=list)  # ms the lookups added to each miss
    exact: list[float] = field(default_factory=list)  # ms through HTTP
    semantic: list[float] = field(default_factory=list)
    duplicates: int = 0
    duplicate_hits: int = 0
    others: int = 0
    false_hits: int = 0
    layers: Counter[str] = field(default_factory=Counter)
    cached: list[tuple[int, str, list[tuple[str, str]]]] = field(default_factory=list)  # pair, q1, cited
    errors: list[str] = field(default_factory=list)


def load_pairs(path: Path, limit: int) -> list[dict[str, Any]]:
    if not path.is_file():
        sys.exit(f"no pairs at {path}: pass --pairs FILE.jsonl")
    with path.open() as f:
        pairs = [json.loads(line) for line in f if line.strip()]
    step = max(1, len(pairs) // limit) if limit else 1
    return pairs[::step][:limit] if limit else pairs


def scoped(i: int) -> dict[str, Any]:
    return {"filters": {"ingested_after": 1.0 + i}}  # a scope per pair; every document passes it


async def ask(http: httpx.AsyncClient, key: str, question: str, **body: Any) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    resp = await http.post("/v1/query", json={"question": question, **body}, headers={"Authorization": f"Bearer {key}"})
    ms = (time.perf_counter() - started) * 1000
    if resp.status_code != 200:
        raise RuntimeError(f"{resp.status_code} {resp.text[:200]}")
    answer: dict[str, Any] = resp.json()
    return answer, ms


async def one_pair(http: httpx.AsyncClient, key: str, i: int, pair: dict[str, Any], tally: Tally) -> None:
    q1, q2, label = str(pair["q1"]), str(pair["q2"]), int(pair["label"])
    first, _ = await ask(http, key, q1, **scoped(i))
    if first["cache"] != "miss":
        tally.errors.append(f"pair {i}: q1 came from the cache in its own scope")
        return
    tally.misses.append(float(first["timings_ms"].get("cache", 0.0)))
    for _ in range(100):  # kept after the answer was sent: ask until it is there
        again, ms = await ask(http, key, q1, **scoped(i))
        if again["cache"] == "exact":
            tally.exact.append(ms)
            break
        await asyncio.sleep(0.01)
    else:
        if not first["degradations"]:
            tally.errors.append(f"pair {i}: a whole answer was never kept")
        return
    tally.cached.append((i, q1, [(c["doc_id"], c["version"]) for c in first["citations"]]))
    second, ms = await ask(http, key, q2, **scoped(i))
    tally.layers[second["cache"]] += 1
    served = second["cache"] != "miss"
    if second["cache"] == "semantic":
        tally.semantic.append(ms)
    if label == 1:
        tally.duplicates += 1
        tally.duplicate_hits += served
    else:
        tally.others += 1
        tally.false_hits += served


async def pairs_phase(api: str, key: str, pairs: list[dict[str, Any]], clients: int) -> Tally:
    tally = Tally()
    queue: asyncio.Queue[tuple[int, dict[str, Any]]] = asyncio.Queue()
    for item in enumerate(pairs):
        queue.put_nowait(item)

    async def worker(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            i, pair = queue.get_nowait()
            try:
                await one_pair(http, key, i, pair, tally)
            except Exception as exc:  # counted, never hidden
                tally.errors.append(f"pair {i}: {exc}")
            if (i + 1) % 250 == 0:
                print(f"  {i + 1} pairs", flush=True)

    async with httpx.AsyncClient(base_url=api, timeout=60) as http:
        await asyncio.gather(*(worker(http) for _ in range(clients)))
    return tally


async def cross_scope(api: str, keys: list[str], tally: Tally) -> int:
    """The cached questions, by callers of another scope: none may get a cached answer."""
    hits = 0
    async with httpx.AsyncClient(base_url=api, timeout=60) as http:
        for i, q1, _ in tally.cached[:200]:
            for key in keys:
                body, _ = await ask(http, key, q1, **scoped(i))
                hits += body["cache"] != "miss"
    return hits


async def stale(api: str, key: str, settings: Any, corpus: Path, tally: Tally) -> tuple[int, int, str]:
    """Change the most cited document, re-ingest it, ask every question that cited it again."""
    r = redis_store.connect(settings)
    catalog = Catalog(r)
    counts = Counter(doc for _, _, cited in tally.cached for doc, _ in cited)
    text = [d for d, _ in counts.most_common() if Path(catalog.record(TENANT, d)["source"]).suffix in (".md", ".txt")]
    if not text:
        return 0, 0, ""
    doc_id = text[0]  # the most cited document a line can be added to
    path = Path(catalog.record(TENANT, doc_id)["source"])
    path.write_text(path.read_text() + "\n\nA line added after the answers were cached.\n")
    client = await connect(settings)
    batch = await start_batch(client, settings, r, stage(settings, [path], TENANT), TENANT, [])
    await batch.result()
    published = Catalog(r).record(TENANT, doc_id)["version"]
    asked = [(i, q1) for i, q1, cited in tally.cached if any(d == doc_id for d, _ in cited)]
    wrong = 0
    async with httpx.AsyncClient(base_url=api, timeout=60) as http:
        for i, q1 in asked:
            body, _ = await ask(http, key, q1, **scoped(i))
            wrong += any(c["doc_id"] == doc_id and c["version"] != published for c in body["citations"])
    return wrong, len(asked), path.name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=Path, default=DEFAULT_PAIRS)
    parser.add_argument("--limit", type=int, default=2000, help="pairs to ask (0: all)")
    parser.add_argument("--clients", type=int, default=1, help="pairs asked at once (latencies are for 1)")
    args = parser.parse_args()
    pairs = load_pairs(args.pairs, args.limit)

    with private_stack("cache") as stack:
        settings, work = stack.settings, stack.work
        corpus = work / "corpus"
        shutil.copytree(SAMPLES, corpus)
        paths = sorted(p for p in corpus.iterdir() if p.is_file())
        ingest(settings, paths, tenant=TENANT)
        ingest(settings, paths, tenant=OTHER)
        api = start_api(settings, work, stack.procs, apart=False, KEEL_CACHE_ENABLED="true")
        keys = KeyStore(redis_store.connect(settings))
        reader = keys.create(tenant=TENANT, roles=[QUERY], name="bench-cache")[1]
        other_groups = keys.create(tenant=TENANT, roles=[QUERY], groups=["bench-other"], name="other groups")[1]
        other_tenant = keys.create(tenant=OTHER, roles=[QUERY], name="other tenant")[1]
        print(f"{len(pairs)} pairs from {args.pairs.name}, {args.clients} at once, over {len(paths)} documents")
        started = time.perf_counter()
        tally = asyncio.run(pairs_phase(api, reader, pairs, args.clients))
        print(f"asked in {time.perf_counter() - started:.0f} s; second questions by layer: {dict(tally.layers)}")
        crossed = asyncio.run(cross_scope(api, [other_groups, other_tenant], tally))
        wrong, asked, changed = asyncio.run(stale(api, reader, settings, corpus, tally))

    for e in tally.errors[:10]:
        print(f"  error: {e}")
    hit_rate = tally.duplicate_hits / tally.duplicates if tally.duplicates else 0.0
    false_rate = tally.false_hits / tally.others if tally.others else 0.0
    print(
        f"duplicates {tally.duplicates}: {tally.duplicate_hits} served from a cache; non-duplicates {tally.others}: "
        f"{tally.false_hits} served from one; errors {len(tally.errors)}"
    )
    print(
        f"exact hits p50 {pct(tally.exact, 50):.1f} ms; semantic hits p50 {pct(tally.semantic, 50):.1f} ms "
        f"({len(tally.semantic)}); lookups on a miss p50 {pct(tally.misses, 50):.2f} ms"
    )
    print(f"stale check: {changed} changed and re-ingested, {asked} questions that cited it asked again")
    print(f"cross-scope check: {min(200, len(tally.cached))} cached questions asked by two other scopes")
    print(f"exact_hit_p95_ms={pct(tally.exact, 95):.1f}")
    print(f"semantic_hit_p95_ms={pct(tally.semantic, 95):.1f}")
    print(f"miss_overhead_p95_ms={pct(tally.misses, 95):.2f}")
    print(f"semantic_hit_rate={hit_rate:.3f}")
    print(f"semantic_false_hit_rate={false_rate:.4f}")
    print(f"stale_answers={wrong}")
    print(f"cross_scope_hits={crossed}")


if __name__ == "__main__":
    main()
