"""`make bench-ingest`: workflow ingestion throughput against a plain in-process loop.

Both ingest the same BEIR corpus (one Markdown file per document, `# title` then the abstract)
with the same steps (parse, chunk, redact, dedupe, embed, upsert, publish), on a private Temporal
dev server and Redis, each into its own tenant and Qdrant Edge directory. Model loading is outside
both timings. The workflow run goes through the same path as `keel ingest`: stage files, start
IngestBatchWorkflow, a worker process executes it. The plain loop prints where its time goes,
step by step (wall and CPU ms per document), and the model alone then embeds exactly the texts the
loop embedded with the same threads, a pass per document or per group of documents, whichever is
faster: the limit ingestion is measured against. Last lines: `ingest_docs_per_s=` (workflows), `embed_limit_docs_per_s=` (the model
alone), `limit_ratio=` (the first over the second), `ingest_ratio=` (workflows over the plain loop).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from app.ingest import stage, start_batch
from bench.shapes import KINDS, large_pdf, mixed_folder
from encoders.dense import DenseEncoder
from evaluation.beir import check_dataset
from index.active import DEFAULT_ENCODER, start_on
from infra.services import free_port, start_redis, start_temporal
from keel import offline  # noqa: F401
from keel.config import Settings
from keel.errors import DatasetNotFound
from pipelines.deps import build_deps
from pipelines.ingest import IngestSteps, ingest_plain, local_document
from stores import redis as redis_store
from temporal.client import connect


@dataclass
class Run:
    name: str
    docs: int
    chunks: int
    seconds: float

    @property
    def docs_per_s(self) -> float:
        return self.docs / self.seconds

    @property
    def chunks_per_s(self) -> float:
        return self.chunks / self.seconds

    def line(self) -> str:
        return (
            f"{self.name:<10} {self.docs_per_s:7.2f} docs/s  {self.chunks_per_s:7.2f} chunks/s  "
            f"({self.docs} docs, {self.chunks} chunks in {self.seconds:.1f} s)"
        )


def write_corpus(dataset: Path, out: Path, limit: int | None) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    with open(dataset / "corpus.jsonl") as f:
        for i, line in enumerate(f):
            if limit is not None and i >= limit:
                break
            doc = json.loads(line)
            title = (doc.get("title") or "").strip()
            body = (doc.get("text") or "").strip()
            path = out / f"{doc['_id']}.md"
            path.write_text(f"# {title}\n\n{body}\n" if title else f"{body}\n")
            paths.append(path)
    return paths


def check_fast_parse(paths: list[Path]) -> None:
    """The Markdown fast path against unstructured on every file of the run: how many it takes,
    and that each of those gives exactly unstructured's elements (a difference fails the bench)."""
    from ingestion import parse
    from ingestion.simple_md import partition_simple_md

    parse._ensure_offline()
    taken = same = 0
    for path in paths:
        text = path.read_text()
        fast = partition_simple_md(text)
        if fast is None:
            continue
        taken += 1
        slow = [parse._to_element(e) for e in parse._partition_text_kind("md", text)]
        same += fast == [e for e in slow if e.text.strip()]
    print(f"markdown fast path: {taken} of {len(paths)} files, {same} of them equal to unstructured's elements")
    if same != taken:
        sys.exit("the markdown fast path differs from unstructured: see ingestion/simple_md.py")


def run_plain(settings: Settings, paths: list[Path], encoder: str, tenant: str) -> tuple[Run, Run]:
    """The plain loop with its per-step profile, then the model alone on the texts it embedded
    (the same batches, one document's chunks at a time, the same threads): the limit."""
    deps = build_deps(settings)
    steps = IngestSteps(deps)
    steps.clock.on = True
    start_on(deps.redis, tenant, encoder)
    if deps.offload is not None:
        deps.offload.wait_ready()  # loaded before the clock starts, as the worker's are
    cpu = time.process_time()
    start = time.perf_counter()
    chunks = 0
    for path in paths:
        data = path.read_bytes()
        ref = local_document(tenant, path, data)
        chunks += ingest_plain(steps, ref, data)
    elapsed = time.perf_counter() - start
    print(f"  cpu seconds during the plain loop: {time.process_time() - cpu:.1f}; per step:")
    print("\n".join(steps.clock.table(len(paths))))
    limit = model_alone(deps.indexes.active(tenant).embedder, steps.clock.embedded, settings.ingest_group_size)
    deps.close()
    return Run("plain loop", len(paths), chunks, elapsed), limit


def model_alone(embedder: DenseEncoder, per_doc: list[list[str]], group_size: int) -> Run:
    """The model alone on the texts the plain loop embedded, at its best: one pass per document
    (as the plain loop and a large document run) or one per `group_size` documents (as a group of
    small ones does), whichever is faster here."""
    size = max(1, group_size)
    grouped = [[t for texts in per_doc[i : i + size] for t in texts] for i in range(0, len(per_doc), size)]
    runs = []
    for passes in (per_doc, grouped):
        start = time.perf_counter()
        for texts in passes:
            embedder.embed(texts)
        runs.append(time.perf_counter() - start)
    print(f"  model alone: a pass per document {runs[0]:.1f} s, a pass per {group_size} documents {runs[1]:.1f} s")
    return Run("model only", len(per_doc), sum(map(len, per_doc)), min(runs))


def _worker_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        KEEL_DATA_DIR=str(settings.data_dir),
        KEEL_TEMPORAL_ADDRESS=settings.temporal_address,
        KEEL_REDIS_URL=settings.redis_url,
        KEEL_TORCH_THREADS=str(settings.torch_threads),
        KEEL_BATCH_WINDOW=str(settings.batch_window),
        KEEL_NEW_TENANT_ENCODER=settings.new_tenant_encoder,  # the one the worker loads at start
    )
    return env


def _cpu_seconds(pid: int) -> float:
    import psutil

    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


def _children_cpu(pid: int) -> float:
    import psutil

    total = 0.0
    for child in psutil.Process(pid).children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):  # replaced after a limit or a crash
            total += _cpu_seconds(child.pid)
    return total


def _redis_calls(r: redis.Redis) -> dict[str, int]:
    """Commands Redis has run so far, by name (its own counters, so nothing is added per call)."""
    stats = r.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def _redis_line(before: dict[str, int], after: dict[str, int], docs: int) -> str:
    """Redis commands per document during the run: each one a round trip unless pipelined."""
    spent = {k: n - before.get(k, 0) for k, n in after.items() if n > before.get(k, 0)}
    top = sorted(spent.items(), key=lambda kv: -kv[1])[:12]
    per_doc = sum(spent.values()) / docs
    return f"  redis commands per document: {per_doc:.1f} (" + ", ".join(f"{k} {n / docs:.1f}" for k, n in top) + ")"


def _print_threads(pid: int) -> None:
    """CPU seconds per thread name in the worker (whole process lifetime, model loading included)."""
    import collections

    import psutil

    by_name: collections.Counter[str] = collections.Counter()
    for t in psutil.Process(pid).threads():
        try:
            name = Path(f"/proc/{pid}/task/{t.id}/comm").read_text().strip()
        except OSError:
            name = "?"
        by_name[name] += t.user_time + t.system_time
    print("  worker threads: " + ", ".join(f"{n} {v:.1f}" for n, v in by_name.most_common(12)))


async def run_workflows(
    settings: Settings, corpus: Path, service_pids: dict[str, int], encoder: str, tenant: str
) -> Run:
    log = settings.data_dir / "worker.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "infra.worker"], env=_worker_env(settings), stdout=out, stderr=subprocess.STDOUT
        )
    try:
        # Both lines: the clock starts once the parse and redaction processes have loaded, as
        # the plain loop's does (their start-up, about 6 CPU-s each, is paid once per worker).
        # And the encoder the benchmark's tenant starts on, which the worker loads at start.
        ready: tuple[str, ...] = ("worker ready", "new-tenant encoder ready")
        if settings.ingest_processes > 0:
            ready = (*ready, "ingest processes ready")
        while not all(line in log.read_text(errors="replace") for line in ready):
            if worker.poll() is not None:
                raise RuntimeError(f"worker exited: {log.read_text()[-2000:]}")
            await asyncio.sleep(0.2)
        client = await connect(settings)
        r = redis_store.connect(settings)
        start_on(r, tenant, encoder)
        pids = {**service_pids, "worker": worker.pid}
        profiler = None
        if os.environ.get("KEEL_BENCH_PROFILE"):  # py-spy the worker: where does orchestration spend time?
            profiler = subprocess.Popen(
                [
                    "py-spy",
                    "record",
                    "--pid",
                    str(worker.pid),
                    "--format",
                    "raw",
                    "--threads",
                    "--nonblocking",
                    "-o",
                    os.environ["KEEL_BENCH_PROFILE"],
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        children = _children_cpu(worker.pid)  # the parse and redaction processes, started by now
        calls_before = _redis_calls(r)
        cpu_before = {name: _cpu_seconds(pid) for name, pid in pids.items()}
        cpu_client = time.process_time()
        start = time.perf_counter()
        staged = stage(settings, [corpus], tenant)
        handle = await start_batch(client, settings, r, staged, tenant, [])
        counters = await handle.result()
        elapsed = time.perf_counter() - start
        if profiler is not None:
            profiler.send_signal(2)
            profiler.wait(timeout=60)
        spent = {name: _cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        spent["worker's children (parse, redact)"] = _children_cpu(worker.pid) - children
        if os.environ.get("KEEL_BENCH_THREADS"):
            _print_threads(worker.pid)
        spent["client (staging, polling)"] = time.process_time() - cpu_client
        print("  cpu seconds during the workflow run: " + ", ".join(f"{k} {v:.1f}" for k, v in spent.items()))
        print(_redis_line(calls_before, _redis_calls(r), max(1, counters.done)))
        if counters.failed:
            print(f"warning: {counters.failed} documents failed in the workflow run", file=sys.stderr)
        return Run("workflows", counters.done, counters.chunks, elapsed)
    finally:
        worker.terminate()
        worker.wait(timeout=60)


@dataclass
class Measured:
    plain: Run
    limit: Run
    flows: Run


def measure(
    name: str, paths: list[Path], folder: Path, base: Settings, work: Path, encoder: str, services: dict[str, int]
) -> Measured:
    """The plain loop, the model alone and the workflows over the same files, each in a data
    directory of its own. The plain loop at its best: one forward pass at a time using every core
    (measured faster than 1 thread for a sequential loop); the worker uses the configured settings."""
    plain_settings = base.model_copy(update={"data_dir": work / f"plain-{name}", "torch_threads": os.cpu_count() or 1})
    plain, limit = run_plain(plain_settings, paths, encoder, f"bench-plain-{name}")
    print(plain.line(), flush=True)
    print(limit.line(), flush=True)
    # The worker builds (int8) and loads the tenant's encoder at start, before the clock starts.
    wf_settings = base.model_copy(update={"data_dir": work / f"wf-{name}", "new_tenant_encoder": encoder})
    flows = asyncio.run(run_workflows(wf_settings, folder, services, encoder, f"bench-wf-{name}"))
    print(flows.line(), flush=True)
    return Measured(plain, limit, flows)


def shape_line(name: str, m: Measured) -> str:
    """A shape's ratios by chunks: a large PDF is one document of many chunks."""
    return (
        f"{name}: workflows {m.flows.chunks_per_s:.1f} chunks/s, model alone {m.limit.chunks_per_s:.1f}, "
        f"plain loop {m.plain.chunks_per_s:.1f}: limit_ratio {m.flows.chunks_per_s / m.limit.chunks_per_s:.3f}, "
        f"ingest_ratio {m.flows.chunks_per_s / m.plain.chunks_per_s:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=Path("../shared/datasets/scifact"))
    parser.add_argument("--limit", type=int, default=None, help="only the first N documents")
    parser.add_argument("--window", type=int, default=None, help="documents in flight (default: settings)")
    parser.add_argument("--encoder", default=DEFAULT_ENCODER, help="the encoder both tenants start on (`default-int8`)")
    parser.add_argument("--pdf-pages", type=int, default=120, help="pages of the large PDF (0: not timed)")
    parser.add_argument("--mixed-files", type=int, default=250, help="files of the mixed folder (0: not timed)")
    args = parser.parse_args()
    try:
        check_dataset(args.dataset)
    except DatasetNotFound as exc:
        sys.exit(exc.message)

    work = Path(tempfile.mkdtemp(prefix="keel-bench-ingest-"))
    temporal = start_temporal(work / "services", port=free_port(), ui_port=None)
    red = start_redis(work / "services", port=free_port())
    try:
        corpus = work / "corpus"
        paths = write_corpus(args.dataset, corpus, args.limit)
        base = Settings()
        base = base.model_copy(
            update={
                "temporal_address": f"127.0.0.1:{temporal.port}",
                "redis_url": f"redis://127.0.0.1:{red.port}/0",
                "batch_window": args.window or base.batch_window,
            }
        )
        services = {"temporal": temporal.proc.pid, "redis": red.proc.pid}
        print(
            f"dataset {args.dataset.name}: {len(paths)} documents; encoder {args.encoder}; "
            f"plain loop torch threads {os.cpu_count()}; worker torch threads {base.torch_threads}, "
            f"window {base.batch_window}, local activity slots {base.max_concurrent_local_activities}",
            flush=True,
        )
        check_fast_parse(paths)
        main_run = measure(args.dataset.name, paths, corpus, base, work, args.encoder, services)
        plain, limit, flows = main_run.plain, main_run.limit, main_run.flows
        shapes: dict[str, Measured] = {}
        if args.pdf_pages:
            pdf = large_pdf(args.dataset, work / "large-pdf", args.pdf_pages)
            print(f"large PDF: {args.pdf_pages} pages, {pdf.stat().st_size / 1e6:.1f} MB", flush=True)
            shapes["large-pdf"] = measure("large-pdf", [pdf], pdf.parent, base, work, args.encoder, services)
        if args.mixed_files:
            mixed = mixed_folder(args.dataset, work / "mixed", args.mixed_files)
            print(f"mixed folder: {len(mixed)} files ({', '.join(KINDS)} in turn)", flush=True)
            shapes["mixed"] = measure("mixed", mixed, mixed[0].parent, base, work, args.encoder, services)
        results = {
            "dataset": args.dataset.name,
            "encoder": args.encoder,
            "documents": len(paths),
            "plain": vars(plain) | {"docs_per_s": plain.docs_per_s, "chunks_per_s": plain.chunks_per_s},
            "workflows": vars(flows) | {"docs_per_s": flows.docs_per_s, "chunks_per_s": flows.chunks_per_s},
            "ingest_ratio": flows.docs_per_s / plain.docs_per_s,
            "embed_limit_docs_per_s": limit.docs_per_s,
            "limit_ratio": flows.docs_per_s / limit.docs_per_s,
            "shapes": {name: {k: vars(v) for k, v in vars(m).items()} for name, m in shapes.items()},
        }
        out = Path("bench/results")
        out.mkdir(parents=True, exist_ok=True)
        (out / f"ingest-{args.dataset.name}-{len(paths)}-{args.encoder}.json").write_text(json.dumps(results, indent=2))
        for name, m in shapes.items():
            print(shape_line(name, m))
        print(f"ingest_docs_per_s={flows.docs_per_s:.2f}")
        print(f"embed_limit_docs_per_s={limit.docs_per_s:.2f}")
        print(f"limit_ratio={flows.docs_per_s / limit.docs_per_s:.3f}")
        print(f"ingest_ratio={flows.docs_per_s / plain.docs_per_s:.3f}")
    finally:
        temporal.stop()
        red.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
