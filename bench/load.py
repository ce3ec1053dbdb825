"""`make bench-load`: the query path under load and faults, with closed-loop clients on loopback.

A private stack (Temporal dev server, Redis, a data dir) is started and a SciFact sample (the
documents judged relevant to the chosen test questions, then filler) is indexed with the plain
loop. Then `python -m infra.server` (what `make run` starts) serves the API and both workers, with
extractive answers, and:
1. idle: closed-loop clients at 1, 4, 16, 64 and 128 concurrency, each level bounded in time;
2. ingest: the same while a batch of `--ingest-docs` other documents is ingested through the
   workflows on another tenant (started in the bench, followed until the levels are done);
3. hang: the server restarted with one OpenAI-compatible provider that accepts connections and
   never answers, 4 and 16 clients: each query should cost at most the attempt deadline
   (`hang_p95_ms` is the 16-client p95; the lines before it say what the hang added on idle).

Each row also shows the CPU the server and Temporal spent per answered query (from /proc).

Every question has relevant documents in the index, so a 200 "no sources" answer is wrong.
Refusals (429/503) must carry Retry-After and come back fast. It prints a table per phase and,
last, `saturation_qps=`, `overload_ratio=` (q/s at 128 clients over the peak), `wrong_answers=`,
`timeouts=`, `refusal_p99_ms=`, `ingest_p95_ratio=`
(4 clients, during ingest / idle) and `hang_p95_ms=`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from app.ingest import follow, new_job_id, stage, start_batch
from bench.lean_http import Connection, Reply
from bench.query import TENANT, ingest, pct, stack_settings, start_api
from evaluation.beir import check_dataset, load_split, write_documents
from gateway.keys import QUERY, KeyStore
from infra.services import free_port, start_redis, start_temporal
from keel import offline  # noqa: F401
from keel.config import Settings
from keel.errors import DatasetNotFound
from stores import redis as redis_store
from temporal.client import connect

LEVELS = (1, 4, 16, 64, 128)
INGEST_TENANT = "bench-load-ingest"
CLIENT_TIMEOUT_S = 30.0
ATTEMPT_DEADLINE_S = 0.8  # the primary link's deadline in the budget table's example


@dataclass
class Level:
    clients: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # ms, answered 200
    refusals: list[float] = field(default_factory=list)  # ms, 429/503
    statuses: Counter[str] = field(default_factory=Counter)
    refused_why: dict[str, list[float]] = field(default_factory=dict)  # ms per refusal, by its reason
    wrong: int = 0  # 200 "no sources" on questions that have sources
    client_cpu_ms: float = 0.0  # the load generator's own CPU over the level
    timeouts: int = 0
    missing_retry_after: int = 0

    @property
    def qps(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def row(self) -> str:
        lat = self.latencies
        codes = " ".join(f"{k}:{v}" for k, v in sorted(self.statuses.items()))
        return (
            f"{self.clients:>7} {self.qps:7.1f} {pct(lat, 50):8.0f} {pct(lat, 95):8.0f} {pct(lat, 99):8.0f} "
            f"{pct(self.refusals, 99):10.1f} {self.wrong:6} {self.timeouts:8}  {codes}"
        )


HEADER = f"{'clients':>7} {'q/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'refuse p99':>10} {'wrong':>6} {'timeouts':>8}  statuses"


async def closed_loop(api: str, key: str, questions: list[str], clients: int, seconds: float, cap: int) -> Level:
    """`clients` loops, each sending its next question as soon as the last one came back, over a
    keep-alive connection of its own (`bench.lean_http`: the client's own CPU stays out of the way)."""
    level = Level(clients)
    headers = {"Authorization": f"Bearer {key}"}
    started = time.monotonic()
    cpu_before = time.process_time()
    stop_at = started + seconds
    sent = 0

    async def client(n: int) -> None:
        nonlocal sent
        conn = Connection(api)
        i = n
        while time.monotonic() < stop_at and sent < cap:
            sent += 1
            q = questions[i % len(questions)]
            i += clients
            t0 = time.perf_counter()
            try:
                resp = await asyncio.wait_for(conn.post_json("/v1/query", {"question": q}, headers), CLIENT_TIMEOUT_S)
            except TimeoutError:
                level.timeouts += 1
                level.statuses["timeout"] += 1
                continue
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:  # counted, never hidden
                level.statuses[type(exc).__name__] += 1
                await asyncio.sleep(0.1)
                continue
            ms = (time.perf_counter() - t0) * 1000
            level.statuses[str(resp.status)] += 1
            if resp.status == 200:
                level.latencies.append(ms)
                level.wrong += bool(resp.json().get("no_sources"))
            elif resp.status in (429, 503):
                level.refusals.append(ms)
                level.refused_why.setdefault(refusal_reason(resp), []).append(ms)
                level.missing_retry_after += "retry-after" not in resp.headers
                await asyncio.sleep(min(1.0, float(resp.headers.get("retry-after", "1"))))  # as a polite client would
        await conn.close()

    await asyncio.gather(*(client(n) for n in range(clients)))
    level.seconds = time.monotonic() - started
    level.client_cpu_ms = (time.process_time() - cpu_before) * 1000
    return level


REASONS = (  # what an `overloaded` refusal's message says (gateway.admission), shortest first
    ("queries are running and", "queue full"),
    ("s away at the current pace", "wait too long"),
    ("no query slot came free", "waited, no slot"),
    ("holds its share", "tenant share"),
)


def refusal_reason(resp: Reply) -> str:
    """Why a 429/503 came: the admission's reason for `overloaded`, else the error code."""
    try:
        error = resp.json()["error"]
    except (ValueError, KeyError, TypeError):
        return f"http {resp.status}"
    message = str(error.get("message", ""))
    return next((name for part, name in REASONS if part in message), str(error.get("code", "unknown")))


def cpu_ms(pid: int) -> float:
    """CPU time a process has used (user + system), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


async def sweep(
    api: str, key: str, questions: list[str], levels: tuple[int, ...], seconds: float, pids: dict[str, int]
) -> list[Level]:
    """Each level in turn; with each row, the CPU each process spent per answered query."""
    out = []
    for clients in levels:
        before = {name: cpu_ms(pid) for name, pid in pids.items()}
        level = await closed_loop(api, key, questions, clients, seconds, cap=int(seconds * 200))
        answered = max(1, len(level.latencies))
        spent = "  ".join(f"{n} {(cpu_ms(p) - before[n]) / answered:.0f}" for n, p in pids.items())
        spent += f"  client {level.client_cpu_ms / answered:.1f}"
        print(f"{level.row()}  [CPU ms/answer: {spent}]", flush=True)
        out.append(level)
    return out


class HangingProvider:
    """Accepts connections and never answers: a provider that hangs."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for c in self.held:
            c.close()


def pick_questions(dataset: Path, docs: list[Path], sample: int, queries: int) -> tuple[list[Path], list[str]]:
    """Test questions and an index sample holding every document judged relevant to them."""
    split = load_split(dataset, "test")
    by_id = {p.stem: p for p in docs}
    chosen = [qid for qid in split.queries if all(d in by_id for d in split.qrels[qid])][:queries]
    relevant = {d for qid in chosen for d in split.qrels[qid]}
    filler = [p for p in docs if p.stem not in relevant]
    sample_paths = [by_id[d] for d in sorted(relevant)] + filler[: max(0, sample - len(relevant))]
    return sample_paths, [split.queries[qid] for qid in chosen]


async def during_ingest(
    settings: Settings,
    api: str,
    key: str,
    questions: list[str],
    paths: list[Path],
    seconds: float,
    pids: dict[str, int],
) -> list[Level]:
    client = await connect(settings)
    r = redis_store.connect(settings)
    staged = stage(settings, paths, INGEST_TENANT, new_job_id(INGEST_TENANT))
    await start_batch(client, settings, r, staged, INGEST_TENANT, [])
    progress: dict[str, int] = {"done": 0}

    async def watch() -> None:
        async for p in follow(client, staged.job_id, every_s=1.0):
            if p is not None:
                progress["done"] = p.counters.done

    watcher = asyncio.create_task(watch())
    while progress["done"] < 5:  # the batch is under way, past its first documents
        await asyncio.sleep(1.0)
    print(
        f"(ingesting {len(paths)} documents on tenant {INGEST_TENANT}; {progress['done']} done when the levels start)"
    )
    levels = await sweep(api, key, questions, LEVELS, seconds, pids)
    done = progress["done"]
    print(f"({done} of {len(paths)} documents done when the levels ended)")
    if done >= len(paths):
        print("warning: the ingest finished before the levels did; raise --ingest-docs")
    watcher.cancel()
    return levels


def overload(idle: list[Level]) -> None:
    """The peak and how much of it the most clients still got (goodput under overload)."""
    peak = max(level.qps for level in idle)
    print(f"saturation_qps={peak:.1f}")
    print(f"overload_ratio={idle[-1].qps / max(peak, 1e-9):.2f}  # q/s at {idle[-1].clients} clients / the peak")


def summary(phase: str, levels: list[Level]) -> None:
    print(f"\n{phase}\n{HEADER}")
    for level in levels:
        print(level.row())


async def run(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="keel-bench-load-"))
    temporal = start_temporal(work / "services", port=free_port(), ui_port=None)
    red = start_redis(work / "services", port=free_port())
    procs: list[subprocess.Popen[bytes]] = []
    hanging = HangingProvider()
    try:
        settings = stack_settings(work, temporal.port, red.port)
        docs = write_documents(args.dataset, work / "corpus")
        sample, questions = pick_questions(args.dataset, docs, args.docs, args.queries)
        ingest(settings, sample)
        others = [p for p in docs if p not in set(sample)][: args.ingest_docs]
        metrics = {"KEEL_METRICS_PORT": "0", "KEEL_TEMPORAL_METRICS_PORT": "0"}
        api = start_api(settings, work, procs, apart=args.apart, **metrics)
        _, key = KeyStore(redis_store.connect(settings)).create(tenant=TENANT, roles=[QUERY], name="bench-load")
        print(f"{len(sample)} documents indexed, {len(questions)} questions that all have sources\n\nidle\n{HEADER}")
        await closed_loop(api, key, questions, 2, 5, cap=50)  # warm-up
        pids = {"server": procs[0].pid, "temporal": temporal.proc.pid}
        if args.apart:
            pids = {"worker": procs[0].pid, "api": procs[1].pid, "temporal": temporal.proc.pid}
        idle = await sweep(api, key, questions, LEVELS, args.seconds, pids)
        if args.idle_only:  # a quick comparison: the idle levels' figures only
            overload(idle)
            print(f"refusal_p99_ms={pct([ms for level in idle for ms in level.refusals], 99):.1f}")
            return
        print(f"\nwhile ingesting\n{HEADER}")
        busy = await during_ingest(settings, api, key, questions, others, args.seconds, pids)

        for p in procs:
            p.terminate()
            p.wait(timeout=120)
        procs.clear()
        provider = {
            "name": "hanging",
            "base_url": f"http://127.0.0.1:{hanging.port}/v1",
            "model": "hangs",
            "attempt_timeout_s": ATTEMPT_DEADLINE_S,
            "first_token_timeout_s": ATTEMPT_DEADLINE_S,
        }
        api = start_api(
            settings,
            work,
            procs,
            apart=args.apart,
            KEEL_PROVIDERS=json.dumps([provider]),
            KEEL_ROUTES=json.dumps({"cheap": ["hanging"], "strong": ["hanging"]}),
            **metrics,
        )
        print(f"\nprovider hangs (attempt deadline {ATTEMPT_DEADLINE_S * 1000:.0f} ms)\n{HEADER}")
        hang = await sweep(api, key, questions, (4, 16), args.seconds, {"server": procs[0].pid})  # the worker

        summary("idle", idle)
        summary("while ingesting", busy)
        summary("provider hangs", hang)
        every = [*idle, *busy, *hang]
        refusals = [ms for level in every for ms in level.refusals]
        reasons: dict[str, list[float]] = {}
        for level in every:
            for why, times in level.refused_why.items():
                reasons.setdefault(why, []).extend(times)
        for why, times in sorted(reasons.items()):
            print(f"refused ({why}): {len(times)}, p50 {pct(times, 50):.1f} ms, p99 {pct(times, 99):.1f} ms")
        missing = sum(level.missing_retry_after for level in every)
        if missing:
            print(f"warning: {missing} refusals came without Retry-After")
        ratio = pct(busy[LEVELS.index(4)].latencies, 95) / max(pct(idle[LEVELS.index(4)].latencies, 95), 1e-9)
        overload(idle)
        print(f"wrong_answers={sum(level.wrong for level in every)}")
        print(f"timeouts={sum(level.timeouts for level in every)}")
        print(f"refusal_p99_ms={pct(refusals, 99):.1f}")
        print(f"ingest_p95_ratio={ratio:.2f}")
        for h in hang:  # what the hang adds, against the idle run at the same concurrency
            same = next(level for level in idle if level.clients == h.clients)
            added = pct(h.latencies, 95) - pct(same.latencies, 95)
            print(f"hang at {h.clients} clients: p95 {pct(h.latencies, 95):.0f} ms, {added:+.0f} ms on idle")
        print(f"hang_p95_ms={pct(hang[-1].latencies, 95):.0f}")
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=120)
        hanging.close()
        temporal.stop()
        red.stop()
        if args.keep:
            print(f"kept {work} (server logs under run-*/)")
        else:
            shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=Path("../shared/datasets/scifact"))
    parser.add_argument("--docs", type=int, default=300, help="documents indexed for the questions")
    parser.add_argument("--queries", type=int, default=200, help="test questions, all with sources in the sample")
    parser.add_argument("--ingest-docs", type=int, default=1000, help="documents ingested during the second phase")
    parser.add_argument("--seconds", type=float, default=15.0, help="per concurrency level")
    parser.add_argument("--apart", action="store_true", help="the API and the worker in processes of their own")
    parser.add_argument("--idle-only", action="store_true", help="the idle levels only (a quick comparison)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, data) afterwards")
    args = parser.parse_args()
    try:
        check_dataset(args.dataset)
    except DatasetNotFound as exc:
        sys.exit(exc.message)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
