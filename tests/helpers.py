"""Small helpers the workflow and API tests share."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import zlib
from collections.abc import Sequence
from pathlib import Path

import redis
from temporalio.client import Client

from app.ingest import stage, start_batch
from bench.hostile import docx_bomb  # noqa: F401 - the bomb the benchmark uploads, for the tests too
from contracts.batch import BatchCounters
from contracts.query import ContextPassage
from index.visibility import visible_at
from infra.services import wait_port
from keel import ids
from keel.config import Settings
from pipelines.deps import Deps
from stores.jobs import FileOutcome, JobStore
from stores.keys import generation_key
from vectorstore.base import Cond, Where


async def ingest(
    client: Client,
    settings: Settings,
    r: redis.Redis,
    paths: Sequence[Path],
    tenant: str,
    groups: Sequence[str] = (),
) -> tuple[BatchCounters, dict[str, FileOutcome]]:
    staged = stage(settings, list(paths), tenant)
    handle = await start_batch(client, settings, r, staged, tenant, list(groups))
    counters = await handle.result()
    outcomes = {Path(o.source).name: o for o in JobStore(r).files(staged.job_id)}
    return counters, outcomes


def points_of(deps: Deps, tenant: str, source: Path | str) -> int:
    doc_id = ids.document_id(tenant, str(source))
    where = Where(must=(Cond("tenant", value=tenant), Cond("doc_id", value=doc_id)))
    return deps.store.count(deps.settings.collection, where)


def visible_texts(deps: Deps, r: redis.Redis, tenant: str, groups: Sequence[str] = ()) -> list[str]:
    gen = int(r.get(generation_key(tenant)) or 0)
    hits, _ = deps.store.scroll(deps.settings.collection, visible_at(tenant, gen, groups), limit=1000)
    return sorted(h.payload["text"] for h in hits)


def _process_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        KEEL_DATA_DIR=str(settings.data_dir),
        KEEL_TEMPORAL_ADDRESS=settings.temporal_address,
        KEEL_REDIS_URL=settings.redis_url,
        KEEL_INGEST_TASK_QUEUE=settings.ingest_task_queue,
        KEEL_QUERY_TASK_QUEUE=settings.query_task_queue,
        KEEL_API_PORT=str(settings.api_port),
        KEEL_TORCH_THREADS="1",
        KEEL_CODEC_KEY=settings.codec_key or "",  # the test stack's key: one ring for client and process
        KEEL_METRICS_PORT="0",  # a developer's own stack may hold the default ports
        KEEL_TEMPORAL_METRICS_PORT="0",
    )
    return env


def start_keel_process(module: str, settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    """`python -m <module>` (infra.worker or infra.server) on these settings; returns once its
    workers are ready. Its output goes to `log`."""
    out = open(log, "ab")  # noqa: SIM115 - the child owns it
    proc = subprocess.Popen(
        [sys.executable, "-m", module], env=_process_env(settings), stdout=out, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 180
    while "worker ready" not in log.read_text(errors="replace"):
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"{module} did not start"
        time.sleep(0.2)
    return proc


def start_api_process(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    """An API-only process (`infra.api`; no workers: its queries run on another process's) on
    `settings.api_port`; returns once it listens."""
    out = open(log, "ab")  # noqa: SIM115 - the child owns it
    args = [sys.executable, "-m", "infra.api"]
    proc = subprocess.Popen(args, env=_process_env(settings), stdout=out, stderr=subprocess.STDOUT)
    wait_port("127.0.0.1", settings.api_port, 120, proc)
    return proc


def context_passage(ref: int, text: str) -> ContextPassage:
    """A passage of a query's context, numbered `ref`, from a document of its own."""
    return ContextPassage(
        ref=ref,
        doc_id=f"d{ref}",
        version="v",
        source=f"doc{ref}.md",
        title=f"Doc {ref}",
        section_path=[],
        chunk_indexes=[0],
        text=text,
        score=1.0,
    )


def pdf_bomb(inflated: int) -> bytes:
    """A one-page PDF whose content stream (FlateDecode) inflates to `inflated` bytes."""
    z = zlib.compressobj(9)
    block = b"0 0 m 1 1 l S\n" * 65536
    parts = [z.compress(block) for _ in range(inflated // len(block))]
    stream = b"".join([*parts, z.flush()])
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    out, offsets = b"%PDF-1.4\n", []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return out
