"""`make bench-cluster`: Keel on the cluster profile (`infra.cluster`: a 3-node Qdrant cluster, a
Redis Cluster of 3 primaries with a replica each, two API-only processes, a query worker and an
ingest worker), against the embedded stack on the same box, then the failure drills.

1. embedded: `python -m infra.server` (what `make run` starts) on a private Temporal and Redis,
   the SciFact sample indexed with the plain loop, closed-loop clients for `--seconds`;
2. cluster: the same sample ingested through the workflows (`cluster_ingest_docs_per_s`), then
   the same clients spread over both API processes (`cluster_qps`);
3. drills, each while a batch of other documents is ingested on a tenant of its own and clients
   keep asking: kill -9 one Qdrant node, one Redis primary (its replica is promoted), the ingest
   worker (restarted after `--down-s`, as a supervisor would), one API process (likewise; clients
   go to the other meanwhile, as a load balancer would send them).

An answer is right when it cites the documents the same question's answer cited before the
drills (the questions' tenant is not written during them, and the caches are off); degraded when
it cites others and says why (a step past its budget on a busy box: `degradations`); refused when
it is a 503 (or 429) with Retry-After. Anything else is wrong: a 200 that cites others without
saying why or says "no sources", any other error. After each drill: its batch's documents each
published once (`lost_documents`), no chunk held by two visible points (`duplicated_points`), and
`recovery_s`, from the kill to the last answer that was neither right nor degraded. Last lines: cluster_ingest_docs_per_s=, cluster_qps=, embedded_qps=,
lost_documents=, duplicated_points=, wrong_answers=, recovery_s=.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from app.ingest import follow, new_job_id, stage, start_batch
from bench.load import closed_loop, cpu_ms, pick_questions
from bench.query import TENANT, ingest, stack_settings, start_api
from evaluation.beir import check_dataset, write_documents
from gateway.keys import INGEST, QUERY, KeyStore
from index.catalog import Catalog
from infra.cluster import ClusterProfile, start_profile
from infra.services import free_port, start_redis, start_temporal
from keel import offline  # noqa: F401
from keel.config import Settings
from keel.errors import DatasetNotFound
from stores import redis as redis_store
from stores.keys import doc_key, tenant_docs_key
from temporal.client import connect
from vectorstore.base import Cond, Where
from vectorstore.server import ServerStore

CLIENT_TIMEOUT_S = 30.0
DRILLS = ("qdrant_node", "redis_primary", "ingest_worker", "api_process")


# -- asking, and judging the answers -------------------------------------------------------------
@dataclass
class Outcomes:
    right: int = 0
    degraded: int = 0  # other citations, and the answer says why (a step past its budget): honest
    refused: int = 0  # 503/429 with Retry-After: honest
    wrong: int = 0
    unreachable: int = 0  # neither API process answered the connection
    last_not_right: float = 0.0  # monotonic time of the last answer neither right nor degraded
    statuses: Counter[str] = field(default_factory=Counter)
    degradations: Counter[str] = field(default_factory=Counter)
    wrong_examples: list[str] = field(default_factory=list)

    def note_not_right(self) -> None:
        self.last_not_right = time.monotonic()


def cited(body: dict[str, Any]) -> frozenset[str]:
    return frozenset(str(c["doc_id"]) for c in body.get("citations") or [])


async def ask_until(
    apis: list[str], key: str, expected: dict[str, frozenset[str]], clients: int, stop: asyncio.Event, out: Outcomes
) -> None:
    """Closed-loop clients over both API processes, round robin; a connection that fails goes to
    the other process (what a load balancer does), and is counted when neither answers."""
    questions = list(expected)
    headers = {"Authorization": f"Bearer {key}"}

    async def client(http: httpx.AsyncClient, n: int) -> None:
        i = n
        while not stop.is_set():
            q = questions[i % len(questions)]
            i += clients
            for attempt in range(len(apis)):
                api = apis[(i + attempt) % len(apis)]
                try:
                    resp = await http.post(f"{api}/v1/query", json={"question": q}, headers=headers)
                    break
                except httpx.TransportError:
                    continue
            else:
                out.unreachable += 1
                out.statuses["unreachable"] += 1
                out.note_not_right()
                await asyncio.sleep(0.2)
                continue
            out.statuses[str(resp.status_code)] += 1
            if resp.status_code == 200:
                body = resp.json()
                if not body.get("no_sources") and cited(body) == expected[q]:
                    out.right += 1
                    continue
                if not body.get("no_sources") and body.get("degradations"):
                    # Under load a step misses its budget and the answer says so (e.g. the
                    # re-scorer's order not used): served, honestly, and not the drill's damage.
                    out.degraded += 1
                    out.degradations.update(body["degradations"])
                    continue
                out.wrong += 1
                if len(out.wrong_examples) < 5:
                    out.wrong_examples.append(f"{q!r}: cited {sorted(cited(body))}, expected {sorted(expected[q])}")
            elif resp.status_code in (429, 503) and "retry-after" in resp.headers:
                out.refused += 1
                await asyncio.sleep(min(1.0, float(resp.headers["retry-after"])))
            else:
                out.wrong += 1
                if len(out.wrong_examples) < 5:
                    out.wrong_examples.append(f"{q!r}: HTTP {resp.status_code} {resp.text[:200]}")
            out.note_not_right()

    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT_S) as http:
        await asyncio.gather(*(client(http, n) for n in range(clients)))


async def baseline(apis: list[str], key: str, questions: list[str]) -> dict[str, frozenset[str]]:
    """What each question's answer cites on a healthy cluster (asked on both processes: the same)."""
    expected: dict[str, frozenset[str]] = {}
    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT_S) as http:
        for q in questions:
            seen = set()
            for api in apis:
                resp = await http.post(
                    f"{api}/v1/query", json={"question": q}, headers={"Authorization": f"Bearer {key}"}
                )
                resp.raise_for_status()
                seen.add(cited(resp.json()))
            if len(seen) == 1 and next(iter(seen)):
                expected[q] = next(iter(seen))
    return expected


# -- what a drill leaves behind --------------------------------------------------------------
def published(r: redis.Redis, tenant: str) -> int:
    ids = r.smembers(tenant_docs_key(tenant))
    return sum(1 for doc_id in ids if r.hget(doc_key(tenant, str(doc_id)), "version"))


def duplicated_points(store: ServerStore, r: redis.Redis, tenant: str) -> int:
    """Chunks held by more than one point visible at the tenant's generation, over every index."""
    generation = Catalog(r).generation(tenant)
    where = Where(
        must=(Cond("tenant", value=tenant), Cond("visible_from", lte=generation), Cond("visible_until", gt=generation))
    )
    held: Counter[tuple[str, int]] = Counter()
    for collection in (c.name for c in store.client.get_collections().collections):
        if collection.endswith("-cache"):
            continue
        offset: str | None = None
        while True:
            page, offset = store.scroll(collection, where, limit=512, offset=offset)
            held.update((str(h.payload["doc_id"]), int(h.payload["chunk_index"])) for h in page)
            if offset is None:
                break
    return sum(n - 1 for n in held.values() if n > 1)


@dataclass
class DrillResult:
    name: str
    batch: int
    published: int
    duplicated: int
    outcomes: Outcomes
    recovery_s: float

    @property
    def lost(self) -> int:
        return self.batch - self.published

    def row(self) -> str:
        o = self.outcomes
        codes = " ".join(f"{k}:{v}" for k, v in sorted(o.statuses.items()))
        return (
            f"{self.name:<15}{self.batch:>6}{self.lost:>6}{self.duplicated:>6}{o.right:>7}{o.degraded:>9}{o.refused:>8}"
            f"{o.wrong:>7}{o.unreachable:>9}{self.recovery_s:>12.1f}  {codes}"
        )


DRILL_HEADER = (
    f"{'drill':<15}{'batch':>6}{'lost':>6}{'dups':>6}{'right':>7}{'degraded':>9}{'refused':>8}{'wrong':>7}{'unreach':>9}"
    f"{'recovery s':>12}  statuses"
)


def _kill_and_heal(profile: ClusterProfile, name: str) -> tuple[Callable[[], None], Callable[[], None]]:
    """The kill, and what brings the part back afterwards (a supervisor's restart, or the node
    rejoining once the drill's measurement is done)."""
    if name == "qdrant_node":
        holder: dict[str, object] = {}

        def kill_q() -> None:
            holder["node"] = profile.kill_qdrant_node(0)  # the first named: every process talks to it first

        return kill_q, lambda: profile.restart_qdrant_node(holder["node"])  # type: ignore[arg-type]
    if name == "redis_primary":
        nodes: dict[str, object] = {}

        def kill_r() -> None:
            nodes["node"] = profile.kill_redis_primary(1)

        return kill_r, lambda: profile.restart_redis_node(nodes["node"])  # type: ignore[arg-type]
    process = {"ingest_worker": "ingest-worker", "api_process": "api-2"}[name]

    def restart() -> None:
        profile.start(process)

    return (lambda: profile.kill(process)), restart


async def drill(
    profile: ClusterProfile,
    settings: Settings,
    name: str,
    docs: list[Path],
    key: str,
    expected: dict[str, frozenset[str]],
    clients: int,
    down_s: float,
    settle_s: float,
) -> DrillResult:
    """Ingest `docs` on a tenant of the drill's own and ask the whole time; kill the part once the
    batch is under way; bring back a killed process after `down_s` (a node rejoins after the
    measurement); wait for the batch; count what it left."""
    tenant = f"drill-{name.replace('_', '-')}"
    r = redis_store.connect(settings)
    client = await connect(settings)
    staged = stage(settings, docs, tenant, new_job_id(tenant))
    await start_batch(client, settings, r, staged, tenant, [])
    out = Outcomes()
    stop = asyncio.Event()
    asking = asyncio.create_task(ask_until(profile.api_urls, key, expected, clients, stop, out))
    kill, heal = _kill_and_heal(profile, name)
    await asyncio.sleep(3.0)  # under way: documents in flight, answers flowing
    killed_at = time.monotonic()
    kill()
    process = name in ("ingest_worker", "api_process")
    if process:
        await asyncio.sleep(down_s)
        await asyncio.to_thread(heal)
    await _wait_job(client, staged.job_id, timeout=600)
    await asyncio.sleep(settle_s)  # answers after everything settled: right again?
    stop.set()
    await asking
    if not process:
        await asyncio.to_thread(heal)  # the node rejoins: the next drill starts whole
    recovery = max(0.0, out.last_not_right - killed_at)
    store = ServerStore(url=profile.qdrant.urls)
    result = DrillResult(
        name=name,
        batch=len(docs),
        published=published(r, tenant),
        duplicated=duplicated_points(store, r, tenant),
        outcomes=out,
        recovery_s=recovery,
    )
    store.close()
    return result


async def _wait_job(client: object, job_id: str, timeout: float) -> None:
    async def done() -> None:
        async for _ in follow(client, job_id, every_s=1.0, outage_s=timeout):  # type: ignore[arg-type]
            pass

    await asyncio.wait_for(done(), timeout)


# -- the whole benchmark ----------------------------------------------------------------------
def cluster_settings(profile: ClusterProfile) -> Settings:
    return profile.settings()


async def ingest_through_workflows(settings: Settings, paths: list[Path], tenant: str) -> float:
    """The documents ingested as `keel ingest` does; returns documents a second."""
    client = await connect(settings)
    r = redis_store.connect(settings)
    started = time.perf_counter()
    staged = stage(settings, paths, tenant, new_job_id(tenant))
    await start_batch(client, settings, r, staged, tenant, [])
    await _wait_job(client, staged.job_id, timeout=3600)
    return len(paths) / (time.perf_counter() - started)


Groups = dict[str, list[int]]  # a part of the stack -> its process ids


def cpu_by_group(groups: Groups) -> dict[str, float]:
    """CPU ms each part has used so far (its processes', not their children's)."""
    return {name: sum(cpu_ms(pid) for pid in pids) for name, pids in groups.items()}


def per_answer(before: dict[str, float], after: dict[str, float], answers: float) -> dict[str, float]:
    return {name: (after[name] - before[name]) / max(answers, 1.0) for name in before}


async def embedded_qps(
    work: Path, sample: list[Path], questions: list[str], clients: int, seconds: float
) -> tuple[float, dict[str, float]]:
    """Answers a second on the embedded stack, and the CPU ms each part spent per answer."""
    temporal = start_temporal(work / "embedded", port=free_port(), ui_port=None)
    red = start_redis(work / "embedded", port=free_port())
    procs: list[subprocess.Popen[bytes]] = []
    try:
        settings = stack_settings(work / "embedded", temporal.port, red.port)
        ingest(settings, sample)
        api = start_api(
            settings, work / "embedded", procs, apart=False, KEEL_METRICS_PORT="0", KEEL_TEMPORAL_METRICS_PORT="0"
        )
        _, key = KeyStore(redis_store.connect(settings)).create(tenant=TENANT, roles=[QUERY], name="bench-cluster")
        await closed_loop(api, key, questions, 2, 5, cap=50)  # warm-up
        groups = {"server (API + workers)": [procs[0].pid], "redis": [red.proc.pid], "temporal": [temporal.proc.pid]}
        before = cpu_by_group(groups)
        level = await closed_loop(api, key, questions, clients, seconds, cap=10**9)
        return level.qps, per_answer(before, cpu_by_group(groups), len(level.latencies))
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=120)
        temporal.stop()
        red.stop()


def profile_groups(profile: ClusterProfile) -> Groups:
    return {
        "API processes": [profile.processes[n].proc.pid for n in ("api-1", "api-2")],
        "query worker": [profile.processes["query-worker"].proc.pid],
        "ingest worker": [profile.processes["ingest-worker"].proc.pid],
        "qdrant (3 nodes)": [n.service.proc.pid for n in profile.qdrant.nodes],
        "redis (6 nodes)": [n.proc.pid for n in profile.redis.nodes],
        "temporal": [profile.temporal.proc.pid],
    }


async def cluster_qps(
    profile: ClusterProfile, key: str, questions: list[str], clients: int, seconds: float
) -> tuple[float, dict[str, float]]:
    apis = profile.api_urls
    await asyncio.gather(*(closed_loop(api, key, questions, 1, 5, cap=25) for api in apis))  # warm-up
    per = max(1, clients // len(apis))
    groups = profile_groups(profile)
    before = cpu_by_group(groups)
    levels = await asyncio.gather(*(closed_loop(api, key, questions, per, seconds, cap=10**9) for api in apis))
    answers = sum(len(level.latencies) for level in levels)
    return sum(level.qps for level in levels), per_answer(before, cpu_by_group(groups), answers)


def cpu_table(title: str, cpu: dict[str, float]) -> None:
    print(f"\n{title}: CPU ms per answer")
    for name, ms in cpu.items():
        print(f"  {name:<24}{ms:8.1f}")
    print(f"  {'all':<24}{sum(cpu.values()):8.1f}")


async def run(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="keel-bench-cluster-"))
    docs = write_documents(args.dataset, work / "corpus")
    sample, questions = pick_questions(args.dataset, docs, args.docs, args.queries)
    others = [p for p in docs if p not in set(sample)]
    print(f"{len(sample)} documents, {len(questions)} questions; {args.clients} clients for {args.seconds:.0f} s")
    embedded, embedded_cpu = 0.0, dict[str, float]()
    if not args.drills_only:
        embedded, embedded_cpu = await embedded_qps(work, sample, questions, args.clients, args.seconds)
    print(f"embedded: {embedded:.1f} answers/s")

    profile = start_profile(work / "cluster", extra_env={"KEEL_CACHE_ENABLED": "false"})
    try:
        settings = cluster_settings(profile)
        r = redis_store.connect(settings)
        _, key = KeyStore(r).create(tenant=TENANT, roles=[QUERY, INGEST], name="bench-cluster")
        docs_per_s = await ingest_through_workflows(settings, sample, TENANT)
        print(f"cluster: ingested {len(sample)} documents at {docs_per_s:.2f}/s")
        qps, cluster_cpu = 0.0, dict[str, float]()
        if not args.drills_only:
            qps, cluster_cpu = await cluster_qps(profile, key, questions, args.clients, args.seconds)
        print(f"cluster: {qps:.1f} answers/s over {len(profile.api_urls)} API processes")
        expected = await baseline(profile.api_urls, key, questions)
        print(f"baseline: {len(expected)} questions with the same cited documents on both API processes")
        results = []
        for i, name in enumerate(args.drills):
            batch = others[i * args.batch : (i + 1) * args.batch]
            results.append(
                await drill(
                    profile, settings, name, batch, key, expected, args.drill_clients, args.down_s, args.settle_s
                )
            )
            print(results[-1].row(), flush=True)
        if not args.drills_only:
            cpu_table("embedded", embedded_cpu)
            cpu_table("cluster", cluster_cpu)
        print(f"\n{DRILL_HEADER}")
        for res in results:
            print(res.row())
            for example in res.outcomes.wrong_examples:
                print(f"    wrong: {example}")
            if res.outcomes.degradations:
                print(f"    degraded: {dict(res.outcomes.degradations)}")
        print(f"cluster_ingest_docs_per_s={docs_per_s:.2f}")
        if not args.drills_only:  # not measured: no line, rather than a 0 that reads as a figure
            print(f"cluster_qps={qps:.1f}")
            print(f"embedded_qps={embedded:.1f}")
        print(f"lost_documents={sum(r.lost for r in results)}")
        print(f"duplicated_points={sum(r.duplicated for r in results)}")
        print(f"wrong_answers={sum(r.outcomes.wrong for r in results)}")
        print(f"recovery_s={max((r.recovery_s for r in results), default=0.0):.1f}")
    finally:
        profile.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=Path("../shared/datasets/scifact"))
    parser.add_argument("--docs", type=int, default=300, help="documents in the sample the questions are asked on")
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--batch", type=int, default=40, help="documents ingested during each drill")
    parser.add_argument("--drill-clients", type=int, default=4)
    parser.add_argument("--down-s", type=float, default=5.0, help="how long a killed process stays down")
    parser.add_argument("--settle-s", type=float, default=5.0)
    parser.add_argument("--drills", type=lambda s: [d for d in s.split(",") if d], default=list(DRILLS))
    parser.add_argument("--drills-only", action="store_true", help="skip the throughput comparison")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    try:
        check_dataset(args.dataset)
    except DatasetNotFound as exc:
        raise SystemExit(str(exc)) from exc
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
