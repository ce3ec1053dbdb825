"""`make bench-query`: query latency through the HTTP API and QueryWorkflow against direct calls.

A private stack (Temporal dev server, Redis, a data dir) is started; the first `--docs` documents
of the corpus are ingested with the plain in-process loop (the ingest path is not what is timed
here). Then the same N queries run twice, with extractive generation so no LLM time is counted:
1. direct: the query steps (retrieve, rerank, context, generate, validate) called in-process,
   one after another, on the same code the activities run;
2. workflow: POST /v1/query to the API, which starts QueryWorkflow (eagerly) on the workers hosted
   in the same process (`python -m infra.server`, as `make run` starts it).
It prints p50/p95 per step and end to end for both and, last, `query_overhead_p95_ms=`.

`--edge` adds what identity and data protection cost on this path: the key check's own time per
request (the API's `Server-Timing: auth`), and the payload codec's, as the workflow pass run again
with the codec off between two passes with it on (the server restarted for each), side by side.
It prints `edge_auth_p95_ms=`, `edge_codec_added_p95_ms=` and `edge_added_p95_ms=` before the last line.
`--stream` times `/v1/query/stream` for the same queries from the client's side: the first `token`
event (sent once the output guardrails passed the answer's first sentence) and `done`; it prints
`stream_first_token_p95_ms=` and `stream_done_p95_ms=` before the last line.
`--chat` asks each question through `/v1/query` and `/v1/chat/completions` side by side (caches
off, the order alternating), and once more as a follow-up after an earlier turn (its rewrite made
at the edge); it prints `chat_added_p95_ms=` and `chat_followup_p95_ms=` before the last line.
`--client` runs `keel query` (the CLI, over HTTP) as a user would, a process per question, and
prints its wall time and its own CPU time beside the server's: `client_query_wall_p50_ms=` and
`client_query_cpu_p50_ms=`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from app.query import build_query
from contracts.query import AnswerInput, FindInput
from evaluation.beir import check_dataset, load_split, write_documents
from gateway.keys import QUERY, KeyStore
from index.catalog import Catalog
from infra.services import SQLITE_PRAGMAS, free_port, start_redis, start_temporal, wait_port
from infra.worker import build_query_steps
from keel import offline  # noqa: F401
from keel.config import Settings
from keel.errors import DatasetNotFound
from pipelines.deps import build_deps
from pipelines.ingest import IngestSteps, ingest_plain, local_document
from stores import query_state
from stores import redis as redis_store
from workflows.policies import query_budgets
from workflows.query import FIND_STEPS, generate_input

TENANT = "bench-query"
STEPS = ("retrieve", "rerank", "hop", "context", "generate", "validate")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] if ordered else 0.0


@dataclass
class PrivateStack:
    work: Path
    settings: Settings
    procs: list[subprocess.Popen[bytes]]  # what start_api spawns; stopped with the stack


@contextmanager
def private_stack(name: str) -> Iterator[PrivateStack]:
    """A benchmark's own Temporal dev server, Redis and data dir, gone after the block."""
    work = Path(tempfile.mkdtemp(prefix=f"keel-bench-{name}-"))
    temporal = start_temporal(work / "services", port=free_port(), ui_port=None)
    red = start_redis(work / "services", port=free_port())
    stack = PrivateStack(work=work, settings=stack_settings(work, temporal.port, red.port), procs=[])
    try:
        yield stack
    finally:
        for p in stack.procs:
            p.terminate()
            p.wait(timeout=60)
        temporal.stop()
        red.stop()
        shutil.rmtree(work, ignore_errors=True)


def stack_settings(work: Path, temporal_port: int, redis_port: int) -> Settings:
    """Settings for a benchmark's private stack: its data dir, Temporal and Redis."""
    return Settings().model_copy(
        update={
            "data_dir": work / "data",
            "temporal_address": f"127.0.0.1:{temporal_port}",
            "redis_url": f"redis://127.0.0.1:{redis_port}/0",
        }
    )


def ingest(settings: Settings, paths: list[Path], tenant: str = TENANT) -> None:
    deps = build_deps(settings)
    steps = IngestSteps(deps)
    started = time.perf_counter()
    for path in paths:
        data = path.read_bytes()
        ingest_plain(steps, local_document(tenant, path, data), data)
    Catalog(deps.redis).add_tenant(tenant)
    deps.close()
    print(f"ingested {len(paths)} documents in {time.perf_counter() - started:.0f} s (plain loop)", flush=True)


def run_direct(settings: Settings, questions: list[str]) -> dict[str, list[float]]:
    """The workflow's two activities as plain calls, in order, with the inputs the workflow builds:
    the same steps and budgets, no workflow, no edge."""
    deps = build_deps(settings)
    acts = build_query_steps(settings, deps)
    r = deps.redis
    budget = query_budgets({})
    times: dict[str, list[float]] = {s: [] for s in (*STEPS, "total")}
    try:
        for q in questions:
            t0 = time.perf_counter()  # the edge's own work (checks, question redaction) is in both totals
            inp = build_query(settings, r, uuid.uuid4().hex, TENANT, [], q, redactor=deps.redactor)
            found = acts.find(FindInput(query=inp, budgets_ms={step: budget[step] for step in FIND_STEPS}))
            assert found.context is not None, found.degradations
            answered = acts.answer(
                AnswerInput(
                    generate=generate_input(inp, found.retrieved, found.context, budget["generate"]),
                    validate_budget_ms=budget["validate"],
                )
            )
            times["total"].append((time.perf_counter() - t0) * 1000)
            steps = {**found.timings_ms, **answered.timings_ms}
            for step in STEPS:
                times[step].append(steps.get(step, 0.0))
            query_state.drop(r, TENANT, inp.request_id)  # as the edge does once the answer is sent
    finally:
        deps.close()
    return times


def run_workflow(api: str, key: str, questions: list[str]) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {s: [] for s in (*STEPS, "total", "auth")}
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=api, timeout=60) as http:
        for q in questions:
            t0 = time.perf_counter()
            resp = http.post("/v1/query", json={"question": q}, headers=headers)
            elapsed = (time.perf_counter() - t0) * 1000
            resp.raise_for_status()
            body = resp.json()
            for step in STEPS:
                times[step].append(float(body["timings_ms"].get(step, 0.0)))
            times["total"].append(elapsed)
            times["auth"].extend(_server_timing(resp.headers.get("Server-Timing", ""), "auth"))
    return times


def run_stream(api: str, key: str, questions: list[str]) -> dict[str, list[float]]:
    """POST /v1/query/stream per question: when the first `token` event arrives (after the output
    guardrails passed the answer's first sentence) and when `done` does, from the client's side."""
    times: dict[str, list[float]] = {"first_token": [], "done": []}
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=api, timeout=60) as http:
        for q in questions:
            t0, event, first = time.perf_counter(), "", None
            with http.stream("POST", "/v1/query/stream", json={"question": q}, headers=headers) as resp:
                resp.raise_for_status()
                for line in resp.iter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: ") and event == "token" and first is None:
                        first = (time.perf_counter() - t0) * 1000
                    elif line.startswith("data: ") and event == "done":
                        times["done"].append((time.perf_counter() - t0) * 1000)
            if first is not None:
                times["first_token"].append(first)
    return times


def run_chat(api: str, key: str, questions: list[str]) -> dict[str, list[float]]:
    """Each question through /v1/query and /v1/chat/completions, caches off, which goes first
    alternating; then as a follow-up after an earlier turn (a stateless client's history)."""
    times: dict[str, list[float]] = {"query": [], "chat": [], "followup": []}
    headers = {"Authorization": f"Bearer {key}"}
    chat = {"model": "keel", "cache": False}
    with httpx.Client(base_url=api, timeout=60) as http:

        def timed(what: str, path: str, body: dict[str, object]) -> dict[str, object]:
            t0 = time.perf_counter()
            resp = http.post(path, json=body, headers=headers)
            times[what].append((time.perf_counter() - t0) * 1000)
            resp.raise_for_status()
            answer: dict[str, object] = resp.json()
            return answer

        for i, q in enumerate(questions):
            pair = [
                ("query", "/v1/query", {"question": q, "cache": False}),
                ("chat", "/v1/chat/completions", {**chat, "messages": [{"role": "user", "content": q}]}),
            ]
            for what, path, body in pair if i % 2 == 0 else pair[::-1]:
                timed(what, path, body)
            earlier = questions[i - 1]
            history = [{"role": "user", "content": earlier}, {"role": "assistant", "content": "(an earlier answer)"}]
            timed("followup", "/v1/chat/completions", {**chat, "messages": [*history, {"role": "user", "content": q}]})
    return times


def run_client(api: str, key: str, questions: list[str]) -> dict[str, list[float]]:
    """`keel query` as a user runs it: a process per question; its wall time, its own CPU time
    (user + system, from the children's rusage) and the server's total from the answer."""
    import resource

    times: dict[str, list[float]] = {"wall": [], "cpu": []}
    env = {**os.environ, "KEEL_URL": api, "KEEL_API_KEY": key}
    for q in questions:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "cli.main", "query", q], env=env, check=True, capture_output=True)
        times["wall"].append((time.perf_counter() - t0) * 1000)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        times["cpu"].append(cpu * 1000)
    return times


def _server_timing(header: str, name: str) -> list[float]:
    """`auth;dur=0.312, ...` -> [0.312] for `name`."""
    out = []
    for part in header.split(","):
        metric, _, dur = part.strip().partition(";dur=")
        if metric == name and dur:
            out.append(float(dur))
    return out


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, *args], env=env, stdout=out, stderr=subprocess.STDOUT)


def start_api(
    settings: Settings, work: Path, procs: list[subprocess.Popen[bytes]], apart: bool, **extra_env: str
) -> str:
    """The server process as `make run` starts it (or, `apart`, a worker and an API-only process)."""
    env = dict(os.environ)
    env.update(
        KEEL_DATA_DIR=str(settings.data_dir),
        KEEL_TEMPORAL_ADDRESS=settings.temporal_address,
        KEEL_REDIS_URL=settings.redis_url,
    )
    # The benchmarks ask the same questions again and again: they measure the query path, not
    # the answer cache (bench-cache does), unless a benchmark says otherwise.
    env.update({"KEEL_CACHE_ENABLED": "false", **extra_env})
    work = work / f"run-{len(procs)}"  # a log of its own: readiness is read from it
    port = free_port()
    env["KEEL_API_PORT"] = str(port)
    if apart:  # API-only and worker-only processes: queries start the usual way
        procs.append(_spawn(["-m", "infra.worker"], env, work / "server.log"))
    else:  # one process hosts the workers and the API, as `make run` starts it
        procs.append(_spawn(["-m", "infra.server"], env, work / "server.log"))
    deadline = time.monotonic() + 300
    while "worker ready" not in (work / "server.log").read_text(errors="replace"):
        if procs[0].poll() is not None or time.monotonic() > deadline:
            raise RuntimeError((work / "server.log").read_text()[-2000:])
        time.sleep(0.2)
    if apart:
        procs.append(_spawn(["-m", "infra.api"], env, work / "api.log"))
    wait_port("127.0.0.1", port, 60, procs[-1])
    return f"http://127.0.0.1:{port}"


def save(name: str, direct: dict[str, list[float]], flow: dict[str, list[float]], overhead: float) -> None:
    def summary(times: dict[str, list[float]]) -> dict[str, dict[str, float]]:
        return {k: {"p50": pct(v, 50), "p95": pct(v, 95), "mean": statistics.fmean(v)} for k, v in times.items()}

    results = {
        "queries": len(direct["total"]),
        "direct": summary(direct),
        "workflow": summary(flow),
        "query_overhead_p95_ms": overhead,
    }
    out = Path("bench/results")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"query-{name}.json").write_text(json.dumps(results, indent=2))


def report(direct: dict[str, list[float]], flow: dict[str, list[float]]) -> None:
    print(f"{'step':<10} {'direct p50':>11} {'direct p95':>11} {'workflow p50':>13} {'workflow p95':>13}")
    for step in (*STEPS, "total"):
        d, w = direct[step], flow[step]
        label = "end to end" if step == "total" else step
        print(f"{label:<10} {pct(d, 50):11.1f} {pct(d, 95):11.1f} {pct(w, 50):13.1f} {pct(w, 95):13.1f}")


def edge(
    settings: Settings,
    work: Path,
    procs: list[subprocess.Popen[bytes]],
    apart: bool,
    key: str,
    warm: list[str],
    timed: list[str],
    sealed: dict[str, list[float]],
) -> None:
    """The workflow pass with the codec off, then on again, each on a fresh server process."""

    def fresh(encrypt: bool) -> dict[str, list[float]]:
        for p in procs:
            p.terminate()
            p.wait(timeout=60)
        procs.clear()
        api = start_api(settings, work, procs, apart, KEEL_ENCRYPT_PAYLOADS=str(encrypt).lower())
        run_workflow(api, key, warm)
        return run_workflow(api, key, timed)

    plain = fresh(False)
    sealed_again = fresh(True)
    on = [pct(sealed["total"], 95), pct(sealed_again["total"], 95)]
    off = pct(plain["total"], 95)
    auth = pct(sealed["auth"] + sealed_again["auth"], 95)
    codec = statistics.fmean(on) - off
    print(f"end to end p95: codec on {on[0]:.1f} and {on[1]:.1f}, codec off {off:.1f} (ms)")
    print(f"auth p50 {pct(sealed['auth'], 50):.2f} p95 {auth:.2f} (ms, Server-Timing)")
    print(f"edge_auth_p95_ms={auth:.2f}")
    print(f"edge_codec_added_p95_ms={codec:.1f}")
    print(f"edge_added_p95_ms={auth + codec:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=Path("../shared/datasets/scifact"))
    parser.add_argument("--queries", type=int, default=200, help="N queries (from the test split)")
    parser.add_argument("--docs", type=int, default=1000, help="documents to index first (0: all)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--default-sqlite", action="store_true", help="Temporal's SQLite without Keel's pragmas")
    parser.add_argument("--apart", action="store_true", help="API and worker in separate processes (no eager start)")
    parser.add_argument("--edge", action="store_true", help="also measure the key check and the payload codec")
    parser.add_argument("--stream", action="store_true", help="also time /v1/query/stream: first token and done")
    parser.add_argument("--chat", action="store_true", help="also compare /v1/chat/completions with /v1/query")
    parser.add_argument("--client", action="store_true", help="also time `keel query` (the CLI over HTTP)")
    args = parser.parse_args()
    try:
        check_dataset(args.dataset)
    except DatasetNotFound as exc:
        sys.exit(exc.message)

    work = Path(tempfile.mkdtemp(prefix="keel-bench-query-"))
    pragmas = () if args.default_sqlite else SQLITE_PRAGMAS
    temporal = start_temporal(work / "services", port=free_port(), ui_port=None, sqlite_pragmas=pragmas)
    red = start_redis(work / "services", port=free_port())
    procs: list[subprocess.Popen[bytes]] = []
    try:
        settings = stack_settings(work, temporal.port, red.port)
        paths = write_documents(args.dataset, work / "corpus")
        ingest(settings, paths[: args.docs] if args.docs else paths)
        split = load_split(args.dataset, "test")
        questions = list(split.queries.values())[: args.queries + args.warmup]
        warm, timed = questions[: args.warmup], questions[args.warmup :]

        run_direct(settings, warm)
        direct = run_direct(settings, timed)

        api = start_api(settings, work, procs, apart=args.apart)
        _, key = KeyStore(redis_store.connect(settings)).create(tenant=TENANT, roles=[QUERY], name="bench-query")
        run_workflow(api, key, warm)
        flow = run_workflow(api, key, timed)

        print(
            f"dataset {args.dataset.name}: {len(paths[: args.docs] if args.docs else paths)} documents, {len(timed)} queries (ms)"
            + (", API and worker apart" if args.apart else "")
        )
        report(direct, flow)
        overhead = pct(flow["total"], 95) - pct(direct["total"], 95)
        save(args.dataset.name + ("-apart" if args.apart else ""), direct, flow, overhead)
        if args.edge:
            edge(settings, work, procs, args.apart, key, warm, timed, flow)
        if args.stream:
            streamed = run_stream(api, key, timed)
            first, done = streamed["first_token"], streamed["done"]
            print(
                f"stream: first token p50/p95 {pct(first, 50):.1f}/{pct(first, 95):.1f} ms, done {pct(done, 50):.1f}/{pct(done, 95):.1f} ms"
            )
            print(f"stream_first_token_p95_ms={pct(first, 95):.1f}")
            print(f"stream_done_p95_ms={pct(done, 95):.1f}")
        if args.chat:
            side = run_chat(api, key, timed)
            for what in ("query", "chat", "followup"):
                mean = statistics.fmean(side[what])
                print(
                    f"{what:<9} p50 {pct(side[what], 50):.1f}  p95 {pct(side[what], 95):.1f}  mean {mean:.1f} ms "
                    f"(caches off, {len(side[what])} requests)"
                )
            out = Path("bench/results")
            out.mkdir(parents=True, exist_ok=True)
            (out / "query-chat-samples.json").write_text(json.dumps(side))
            print(f"chat_added_p95_ms={pct(side['chat'], 95) - pct(side['query'], 95):.1f}")
            print(f"chat_followup_p95_ms={pct(side['followup'], 95):.1f}")
        if args.client:
            ran = run_client(api, key, timed[:20])
            server = pct(flow["total"], 50)
            print(
                f"keel query: wall p50 {pct(ran['wall'], 50):.0f} ms, its own CPU p50 {pct(ran['cpu'], 50):.0f} ms "
                f"(the HTTP round trip alone: p50 {server:.0f} ms)"
            )
            print(f"client_query_wall_p50_ms={pct(ran['wall'], 50):.0f}")
            print(f"client_query_cpu_p50_ms={pct(ran['cpu'], 50):.0f}")
        print(f"query_overhead_p95_ms={overhead:.1f}")
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=60)
        temporal.stop()
        red.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
