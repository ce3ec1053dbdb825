"""`make bench-profile`: where each answered query's CPU goes, room by room, in one table.

A private stack (Temporal dev server, Redis, a data dir) is started and a SciFact sample indexed,
as `make bench-load` does; `python -m infra.server` serves with extractive answers and the caches
off. After a warm-up, closed-loop clients ask questions for `--seconds` while a sampling profiler
(py-spy, attached to the server, not pausing it) records which stacks were running. Each sample is
sorted into a room (`bench.rooms`): the part of the path (the edge, the HTTP server, a workflow
task, each query step, the Temporal SDK) and the kind of work at its leaf (Redis, Qdrant, the
encoder, serialisation, ...), and the table shows CPU ms per answered query for each.

Beside the sampled total it shows what /proc says the server and Temporal's dev server spent per
answer (sampling sees Python threads; /proc sees every thread, native ones too). `--label` saves
the table under bench/results/profile-LABEL.json; `--before LABEL` adds that saved table as a
column, for a change's before and after side by side. Last lines: `server_cpu_ms_per_query=`,
`temporal_cpu_ms_per_query=`, `sampled_ms_per_query=` and `qps=`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from bench.load import closed_loop, cpu_ms, pick_questions
from bench.query import TENANT, ingest, pct, stack_settings, start_api
from bench.rooms import IDLE, parse_raw, tally
from evaluation.beir import check_dataset, write_documents
from gateway.keys import QUERY, KeyStore
from infra.services import free_port, start_redis, start_temporal
from keel import offline  # noqa: F401
from keel.errors import DatasetNotFound
from stores import redis as redis_store

RESULTS = Path("bench/results")


def py_spy() -> str:
    found = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if found is None:
        sys.exit("py-spy is not installed: `make install` adds it (a dev dependency)")
    return found


def record(pid: int, args: argparse.Namespace, out: Path) -> subprocess.Popen[bytes]:
    """The sampling profiler attached to `pid` for the measured window, not pausing it."""
    window = ["--pid", str(pid), "--rate", str(args.rate), "--duration", str(int(args.seconds))]
    return subprocess.Popen(
        [py_spy(), "record", *window, "--format", "raw", "--full-filenames", "--nonblocking", "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def table(rows: dict[str, float], before: dict[str, float] | None, total: float) -> list[str]:
    """Rows by their ms per query, the biggest first, with the saved run's beside them."""
    head = f"{'room':<44} {'ms/query':>9} {'share':>6}" + (f" {'before':>9}" if before is not None else "")
    lines = [head]
    names = sorted(set(rows) | set(before or {}), key=lambda n: -rows.get(n, 0.0))
    for name in names:
        ms = rows.get(name, 0.0)
        line = f"{name:<44} {ms:9.2f} {ms / max(total, 1e-9):6.1%}"
        if before is not None:
            line += f" {before.get(name, 0.0):9.2f}"
        lines.append(line)
    return lines


def rooms_of(samples_file: Path, rate: int, answered: int) -> tuple[dict[str, float], float]:
    """Each room's CPU ms per answered query, and the idle threads' left out."""
    counted = tally(parse_raw(samples_file.read_text().splitlines()))
    ms_per_sample = 1000 / rate
    idle = counted.pop(IDLE, 0) * ms_per_sample / answered  # waits the sampler could not tell apart
    return {f"{p} / {k}": n * ms_per_sample / answered for (p, k), n in counted.items()}, idle


def retally(label: str) -> None:
    """A saved profile's samples sorted again with the rooms as they are now."""
    saved = json.loads((RESULTS / f"profile-{label}.json").read_text())
    saved["rooms"], saved["idle_ms_per_query"] = rooms_of(
        RESULTS / f"profile-{label}.samples.txt", saved.get("rate", 250), saved["answered"]
    )
    saved["sampled_ms_per_query"] = sum(saved["rooms"].values())
    (RESULTS / f"profile-{label}.json").write_text(json.dumps(saved, indent=2))
    print(f"re-sorted {label}: {saved['sampled_ms_per_query']:.1f} ms per query in rooms")


def by_place(rooms: dict[str, float]) -> dict[str, float]:
    places: Counter[str] = Counter()
    for name, ms in rooms.items():
        places[name.split(" / ", 1)[0]] += ms  # type: ignore[assignment]
    return dict(places)


async def profile(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="keel-bench-profile-"))
    temporal = start_temporal(work / "services", port=free_port(), ui_port=None)
    red = start_redis(work / "services", port=free_port())
    procs: list[subprocess.Popen[bytes]] = []
    try:
        settings = stack_settings(work, temporal.port, red.port)
        docs = write_documents(args.dataset, work / "corpus")
        sample, questions = pick_questions(args.dataset, docs, args.docs, args.queries)
        ingest(settings, sample)
        api = start_api(settings, work, procs, apart=args.apart, KEEL_METRICS_PORT="0", KEEL_TEMPORAL_METRICS_PORT="0")
        _, key = KeyStore(redis_store.connect(settings)).create(tenant=TENANT, roles=[QUERY], name="bench-profile")
        await closed_loop(api, key, questions, args.clients, 5, cap=100)  # warm-up
        # One server process, or (--apart) the worker's and the API's, each sampled on its own.
        pids = {"server": procs[0].pid} if not args.apart else {"worker": procs[0].pid, "api": procs[1].pid}
        pids["temporal"] = temporal.proc.pid
        before = {name: cpu_ms(pid) for name, pid in pids.items()}
        spies = {
            name: (record(pid, args, work / f"samples-{name}.txt"), work / f"samples-{name}.txt")
            for name, pid in pids.items()
            if name != "temporal"
        }
        level = await closed_loop(api, key, questions, args.clients, args.seconds, cap=int(args.seconds * 500))
        spent = {name: cpu_ms(pid) - before[name] for name, pid in pids.items()}
        raw = work / "samples.txt"
        with raw.open("w") as merged:
            for spy, samples in spies.values():
                _, err = spy.communicate(timeout=120)
                if spy.returncode != 0 or not samples.exists():
                    sys.exit(f"the profiler failed: {err.decode(errors='replace')[-2000:]}")
                merged.write(samples.read_text())
        answered = max(1, len(level.latencies))
        rooms, idle = rooms_of(raw, args.rate, answered)
        sampled = sum(rooms.values())
        saved = json.loads((RESULTS / f"profile-{args.before}.json").read_text()) if args.before else None
        print(
            f"\n{len(sample)} documents, {args.clients} clients for {args.seconds:.0f} s: {answered} answers, "
            f"{level.qps:.1f} q/s, p50 {pct(level.latencies, 50):.0f} ms, p95 {pct(level.latencies, 95):.0f} ms"
        )
        print(f"statuses: {dict(level.statuses)}\n\nCPU by room (ms per answered query)")
        print("\n".join(table(rooms, saved["rooms"] if saved else None, sampled)))
        print("\nCPU by part of the path")
        print("\n".join(table(by_place(rooms), by_place(saved["rooms"]) if saved else None, sampled)))
        result = {
            "qps": level.qps,
            "rate": args.rate,
            "idle_ms_per_query": idle,
            "clients": args.clients,
            "answered": answered,
            "server_cpu_ms_per_query": sum(ms for name, ms in spent.items() if name != "temporal") / answered,
            "temporal_cpu_ms_per_query": spent["temporal"] / answered,
            "cpu_ms_per_query": {name: ms / answered for name, ms in spent.items()},
            "apart": args.apart,
            "sampled_ms_per_query": sampled,
            "rooms": rooms,
        }
        if args.label:
            RESULTS.mkdir(parents=True, exist_ok=True)
            (RESULTS / f"profile-{args.label}.json").write_text(json.dumps(result, indent=2))
            shutil.copy(raw, RESULTS / f"profile-{args.label}.samples.txt")  # the stacks, for a closer look
        if saved:
            print(
                f"\nbefore ({args.before}): server {saved['server_cpu_ms_per_query']:.1f} ms, "
                f"temporal {saved['temporal_cpu_ms_per_query']:.1f} ms per query, {saved['qps']:.1f} q/s"
            )
        print(
            "CPU ms per answered query by process: " + ", ".join(f"{n} {ms / answered:.1f}" for n, ms in spent.items())
        )
        print(f"server_cpu_ms_per_query={result['server_cpu_ms_per_query']:.1f}")
        print(f"temporal_cpu_ms_per_query={result['temporal_cpu_ms_per_query']:.1f}")
        print(f"(left out: {idle:.1f} ms per query of threads seen waiting for work, a socket or a lock)")
        print(f"sampled_ms_per_query={sampled:.1f}")
        print(f"qps={level.qps:.1f}")
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=120)
        temporal.stop()
        red.stop()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=Path("../shared/datasets/scifact"))
    parser.add_argument("--docs", type=int, default=300, help="documents indexed for the questions")
    parser.add_argument("--queries", type=int, default=200, help="test questions, all with sources in the sample")
    parser.add_argument("--clients", type=int, default=4, help="closed-loop clients while sampling")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to sample")
    parser.add_argument("--rate", type=int, default=250, help="samples a second")
    parser.add_argument("--apart", action="store_true", help="the API and the worker in processes of their own")
    parser.add_argument("--label", default="", help="save the table as bench/results/profile-LABEL.json")
    parser.add_argument("--before", default="", help="show a saved table (its LABEL) beside this one")
    parser.add_argument("--retally", default="", help="sort a saved profile's samples (its LABEL) again, and stop")
    args = parser.parse_args()
    if args.retally:
        retally(args.retally)
        return
    try:
        check_dataset(args.dataset)
    except DatasetNotFound as exc:
        sys.exit(exc.message)
    asyncio.run(profile(args))


if __name__ == "__main__":
    main()
