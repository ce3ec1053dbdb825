"""`make bench-migrate`: move a tenant to another embedding index while it is being queried.

A private stack (Temporal dev server, Redis, a data dir) is started and a sample of the dataset
(every document judged relevant to a test question, then filler; `--docs 0` for all) is indexed
with the default encoder by the plain loop. Then:
1. baseline: the same chunks, read back from the index, re-embedded with the target encoder in
   this process and nothing else: the plain re-embedding speed the backfill is compared with;
2. the server (`python -m infra.server`, as `make run` starts it) hosts the API and the workers,
   and a steady load of `--qps` QueryWorkflows (the test questions) runs for the whole migration;
3. a migration to `--to` starts through POST /v1/admin/index/migrations with the test qrels as
   its golden set and `--shadow-s` seconds of shadow traffic; the gate's table is printed. When
   the gate passes it flips by itself; when it does not, the bench approves it (an operator would
   read the table first; the line says so) so the flip and rollback can still be measured;
4. after the flip the load goes on, then POST /v1/admin/index/migrations/rollback switches back,
   and the load goes on again.

Every answer is checked: a workflow that fails is a failed query; an answer whose candidates or
citations came from another index than the one it names is mixed (`evaluation.consistency`).
`flip_ms` and `rollback_ms` are the switch itself as the workflow and the rollback record it
(the tenant's index hash changed under its publish lock); the API round trip is printed beside.
Last lines: `reembed_chunks_per_s=`, `backfill_ratio=`, then `backfill_chunks_per_s=`,
`failed_queries=`, `mixed_answers=`, `flip_ms=`, `rollback_ms=`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis
from temporalio.client import Client

from app.query import build_query, run_query
from bench.query import ingest, private_stack, start_api
from cli.index import print_record
from evaluation.beir import check_dataset, load_split, write_documents
from evaluation.consistency import mixed
from gateway.keys import ADMIN, KeyStore
from keel import offline  # noqa: F401
from keel.config import Settings
from keel.errors import DatasetNotFound
from pipelines.deps import build_deps
from pipelines.migrate import Migrator
from stores import redis as redis_store
from temporal.client import connect

TENANT = "bench-migrate"
SOURCE = "default"
SETTLED = {"flipped", "awaiting_approval", "cancelled", "failed"}


@dataclass
class Load:
    """What the steady query load saw, by the embedding version each answer names."""

    answered: Counter[str] = field(default_factory=Counter)
    failed: list[str] = field(default_factory=list)
    mixed: list[str] = field(default_factory=list)
    running: bool = True


def pick(dataset: Path, docs: list[Path], sample: int) -> tuple[list[Path], list[dict[str, Any]]]:
    """An index sample holding every document judged relevant to the chosen test questions, and
    those questions as a golden set (qrels by document file stem, as ingested)."""
    split = load_split(dataset, "test")
    by_id = {p.stem: p for p in docs}
    chosen = [qid for qid in split.queries if all(d in by_id for d in split.qrels[qid])]
    relevant = {d for qid in chosen for d in split.qrels[qid]}
    filler = [p for p in docs if p.stem not in relevant]
    paths = [by_id[d] for d in sorted(relevant)] + (filler[: max(0, sample - len(relevant))] if sample else filler)
    golden = [{"query": split.queries[q], "relevant": split.qrels[q]} for q in chosen]
    return paths, golden


def reembed_speed(settings: Settings, target: str) -> tuple[int, float]:
    """The tenant's chunks re-embedded with `target` in this process, page by page, nothing else:
    (chunks, chunks per second)."""
    deps = build_deps(settings)
    try:
        migrator = Migrator(deps)
        source, dest = deps.indexes.ensure(deps.indexes.index(SOURCE)), deps.indexes.index(target)
        pages, offset = [], None
        while True:
            hits, offset = deps.store.scroll(
                source.collection, migrator.tenant_points(TENANT), settings.backfill_page, offset
            )
            pages.append(migrator.embedding_texts(hits))
            if offset is None:
                break
        dest.embedder.embed(pages[0][:8])  # the first call's one-off costs are not throughput
        started = time.perf_counter()
        for texts in pages:
            dest.embedder.embed(texts)
        seconds = time.perf_counter() - started
        chunks = sum(len(p) for p in pages)
        return chunks, chunks / seconds
    finally:
        deps.close()


async def steady_load(
    client: Client, settings: Settings, r: redis.Redis, questions: list[str], qps: float, load: Load
) -> None:
    """QueryWorkflows started at a steady rate (not closed-loop: a slow answer does not slow the
    arrivals) until `load.running` is cleared, each answer checked for a mix of indexes."""
    tasks: set[asyncio.Task[None]] = set()

    async def one(question: str) -> None:
        request_id = uuid.uuid4().hex
        try:
            out = await run_query(client, settings, build_query(settings, r, request_id, TENANT, [], question))
        except Exception as exc:  # counted, never hidden
            load.failed.append(f"{type(exc).__name__}: {exc}"[:200])
            return
        load.answered[out.embedding_version] += 1
        if why := mixed(r, TENANT, request_id, out):
            load.mixed.append(why)

    i = 0
    started = time.monotonic()
    while load.running:
        task = asyncio.create_task(one(questions[i % len(questions)]))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        i += 1
        await asyncio.sleep(max(0.0, started + i / qps - time.monotonic()))
    await asyncio.gather(*tasks)


async def migration(
    api: str, admin: dict[str, str], args: argparse.Namespace, golden: list[dict[str, Any]]
) -> dict[str, Any]:
    """Start the migration, follow it to the flip (approving when the gate refuses), roll back."""
    async with httpx.AsyncClient(base_url=api, timeout=120, headers=admin) as http:
        body = {"to": args.to, "golden": golden, "shadow_wait_s": args.shadow_s, "retention_s": 3600}
        started = await http.post("/v1/admin/index/migrations", json=body)
        started.raise_for_status()
        print(f"migration {started.json()['migration_id']} to {args.to}: {started.json()['temporal_ui']}")
        record = await follow(http, SETTLED)
        if record["state"] == "awaiting_approval":
            print_record(record)
            print("the gate did not pass; the bench approves the flip to measure it (an operator decides here)")
            (await http.post("/v1/admin/index/migrations/approve")).raise_for_status()
            record = await follow(http, {"flipped", "cancelled", "failed"})
        print_record(record)
        if record["state"] != "flipped":
            raise SystemExit(f"the migration ended {record['state']}: {record.get('error')}")
        await asyncio.sleep(args.after_s)  # answers from the new index
        t0 = time.perf_counter()
        back = await http.post("/v1/admin/index/migrations/rollback")
        round_trip_ms = (time.perf_counter() - t0) * 1000
        back.raise_for_status()
        await asyncio.sleep(args.after_s)  # answers from the old index again
        record = (await http.get("/v1/admin/index/migrations/latest")).json()
        record["rollback_api_ms"] = round_trip_ms
        return record


async def follow(http: httpx.AsyncClient, states: set[str]) -> dict[str, Any]:
    shown = -1
    while True:
        resp = await http.get("/v1/admin/index/migrations/latest")
        if resp.status_code == 429:  # the admin routes' rate limit: wait as told
            await asyncio.sleep(float(resp.headers.get("Retry-After", "1")))
            continue
        record: dict[str, Any] = resp.json()
        done, total = int(record.get("chunks_done") or 0), int(record.get("chunks_total") or 0)
        tenth = 10 * done // total if total else 0
        if record.get("state") == "backfilling" and tenth != shown:
            shown = tenth
            print(f"  backfill {done}/{total} chunks, {record.get('chunks_per_s')} /s, eta {record.get('eta_s')} s")
        if record.get("state") in states:
            return record
        await asyncio.sleep(0.5)


async def run(settings: Settings, api: str, args: argparse.Namespace, golden: list[dict[str, Any]]) -> None:
    r = redis_store.connect(settings)
    _, token = KeyStore(r).create(tenant=TENANT, roles=[ADMIN], name="bench-migrate")
    client = await connect(settings)
    questions = [g["query"] for g in golden]
    for q in questions[:5]:  # warm the workers before the timed load
        await run_query(client, settings, build_query(settings, r, uuid.uuid4().hex, TENANT, [], q))
    load = Load()
    load_task = asyncio.create_task(steady_load(client, settings, r, questions, args.qps, load))
    await asyncio.sleep(args.after_s)  # answers from the old index before anything starts
    try:
        record = await migration(api, {"Authorization": f"Bearer {token}"}, args, golden[: args.golden])
    finally:
        load.running = False
        await load_task
    report(args, record, load)


def report(args: argparse.Namespace, record: dict[str, Any], load: Load) -> None:
    print(
        f"\nqueries answered by embedding version: {dict(load.answered)}; "
        f"failed {len(load.failed)}, mixed {len(load.mixed)}"
    )
    for why in (load.failed + load.mixed)[:10]:
        print(f"  {why}")
    print(f"rollback: {record.get('rollback_ms')} ms switch, {record['rollback_api_ms']:.0f} ms through the API")
    backfill = float(record.get("chunks_per_s") or 0)
    print(f"reembed_chunks_per_s={args.reembed:.1f}")
    print(f"backfill_ratio={backfill / args.reembed if args.reembed else 0:.2f}")
    print(f"backfill_chunks_per_s={backfill:.1f}")
    print(f"failed_queries={len(load.failed)}")
    print(f"mixed_answers={len(load.mixed)}")
    print(f"flip_ms={float(record.get('flip_ms') or 0):.2f}")
    print(f"rollback_ms={float(record.get('rollback_ms') or 0):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=Path("../shared/datasets/scifact"))
    parser.add_argument("--docs", type=int, default=1000, help="documents to index (0: all)")
    parser.add_argument("--to", default="default-w128", help="the encoder to migrate to (`keel index encoders`)")
    parser.add_argument("--golden", type=int, default=300, help="golden queries (test split) gating the flip")
    parser.add_argument("--qps", type=float, default=1.0, help="steady query load, queries per second")
    parser.add_argument("--shadow-s", type=float, default=30.0, help="seconds of shadow traffic before the gate")
    parser.add_argument("--after-s", type=float, default=15.0, help="load before, after the flip, after rollback")
    args = parser.parse_args()
    try:
        check_dataset(args.dataset)
    except DatasetNotFound as exc:
        sys.exit(exc.message)

    with private_stack("migrate") as stack:
        settings = stack.settings
        paths, golden = pick(args.dataset, write_documents(args.dataset, stack.work / "corpus"), args.docs)
        ingest(settings, paths, tenant=TENANT)
        chunks, args.reembed = reembed_speed(settings, args.to)
        print(f"plain re-embedding with {args.to}: {chunks} chunks at {args.reembed:.1f} chunks/s (this process)")
        api = start_api(settings, stack.work, stack.procs, apart=False)
        print(f"dataset {args.dataset.name}: {len(paths)} documents, {len(golden)} test questions, {args.qps} q/s")
        asyncio.run(run(settings, api, args, golden))


if __name__ == "__main__":
    main()
