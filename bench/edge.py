"""`python -m bench.edge`: what identity and data protection add to each query, measured alone.

- auth: resolving a Bearer key (one Redis HGETALL on a real Redis, a SHA-256, a constant-time
  compare), as every request does;
- codec: sealing and opening every payload one query's workflow writes and reads (its input, five
  steps' inputs and outputs with a packed context of eight passages, its result), AES-GCM;
- question redaction: Presidio over a typical question (a pipeline of its own, as the API has);
- limiter: one query's admission and settlement for a key and a tenant that both have rpm, tpm
  and concurrency limits (the tenant-limits read, the admit script, the settle script);
- route limiter: what the same admission adds to every other route (an upload's, with its
  kilobytes counted; the shipped defaults of `key_route_limits` and `tenant_route_limits`).
Prints p50/p95 of each and, last, `edge_auth_p95_ms=`, `edge_codec_p95_ms=`, `edge_auth_codec_p95_ms=`,
`question_redaction_p95_ms=`, `limiter_p99_ms=` and `route_limiter_p99_ms=`.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.query import pct
from contracts.query import (
    ContextInput,
    ContextOutput,
    ContextPassage,
    GenerateInput,
    GenerateOutput,
    QueryInput,
    QueryOutput,
    RetrieveInput,
    RetrieveOutput,
    Scored,
    ValidateInput,
    ValidateOutput,
)
from gateway.keys import QUERY, KeyStore
from gateway.limits import Limiter, Limits
from generation import prompts
from guardrails.pii import Redactor
from infra.services import free_port, start_redis
from keel import offline  # noqa: F401
from keel.config import Settings
from stores import redis as redis_store
from temporal.codec import EncryptionCodec, KeyRing
from temporal.data_converter import DATA_CONVERTER

QUESTION = "How long do refunds for international orders take, and who approves exceptions?"


def query_payloads() -> list[Any]:
    """What one query's history holds, at realistic sizes (eight ~200-word passages)."""
    q = QueryInput(request_id=secrets.token_urlsafe(16), tenant="acme", groups=["all"], question=QUESTION)
    passages = [
        ContextPassage(
            ref=i + 1,
            doc_id=f"{i:032x}",
            version="ab" * 32,
            source=f"docs/policy-{i}.md",
            title="Refund policy",
            section_path=["Refunds", "International"],
            chunk_indexes=[i],
            text="Refunds are issued within thirty days of purchase to the original payment method. " * 14,
            score=0.5,
        )
        for i in range(8)
    ]
    top = [Scored(point_id=f"p{i}", doc_id=f"d{i}", dense=0.5, sparse=3.0, fused=0.03) for i in range(5)]
    retrieved = RetrieveOutput(candidates_key="k", ranking="r", count=100, top=top, generation=3, embedding_version="e")
    ctx_in = ContextInput(tenant="acme", question=QUESTION, candidates_key="k", ranking="r", token_budget=0)
    ctx = ContextOutput(passages=passages, tokens=1400, dropped_duplicates=1, dropped_over_budget=2, confidence=0.7)
    gen_in = GenerateInput(request_id="r", tenant="acme", question=QUESTION, passages=passages, confidence=0.7)
    gen = GenerateOutput(text="Refunds are issued within thirty days [1].", route="cheap", provider="extractive")
    val_in = ValidateInput(question=QUESTION, text=gen.text, passages=passages, prompt_id=prompts.TEXT_PROMPT)
    val = ValidateOutput(text=gen.text, citations=[], supported_rate=1.0)
    out = QueryOutput(request_id="r", answer=gen.text, citations=[], degradations=[], timings_ms={"retrieve": 30.0})
    return [q, RetrieveInput(query=q), retrieved, ctx_in, ctx, gen_in, gen, val_in, val, out]


def time_codec(runs: int) -> list[float]:
    codec = EncryptionCodec(KeyRing(active="k", keys={"k": secrets.token_bytes(32)}))
    plain = DATA_CONVERTER.payload_converter.to_payloads(query_payloads())

    async def one() -> float:
        started = time.perf_counter()
        for p in plain:  # each payload is sealed when written and opened when read
            await codec.decode(await codec.encode([p]))
        return (time.perf_counter() - started) * 1000

    return [asyncio.run(one()) for _ in range(runs)]


def time_limiter(r: Any, runs: int) -> list[float]:
    limiter = Limiter(r)
    limiter.set_tenant_limits("acme", Limits(rpm=10**6, tpm=10**9, concurrent=10**4))
    key = Limits(rpm=10**6, tpm=10**9, concurrent=10**4)  # never binding: every call takes the full path
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        ticket = limiter.admit(secrets.token_hex(8), limiter.scopes("k1", key, "acme"), 2300)
        limiter.settle(ticket, 900, 0.001)
        times.append((time.perf_counter() - started) * 1000)
    return times


def time_route_limiter(r: Any, settings: Settings, runs: int) -> list[float]:
    limiter = Limiter(r)
    key, tenant = Limits.of(settings.key_route_limits["ingest"]), Limits.of(settings.tenant_route_limits["ingest"])
    times = []
    for i in range(runs):
        started = time.perf_counter()
        # Each request as another key: the shipped rpm would refuse one key's 2,000 in a row.
        scopes = limiter.route_scopes(f"k{i}", f"acme{i % 50}", "ingest", key, tenant)
        ticket = limiter.admit(secrets.token_hex(8), scopes, 64)
        limiter.settle(ticket, ticket.reserved_tokens, 0.0)
        times.append((time.perf_counter() - started) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="keel-bench-edge-"))
    red = start_redis(work, port=free_port())
    try:
        settings = Settings(data_dir=work, redis_url=f"redis://127.0.0.1:{red.port}/0")
        store = KeyStore(redis_store.connect(settings))
        _, token = store.create(tenant="acme", roles=[QUERY])
        auth = []
        for _ in range(args.runs):
            started = time.perf_counter()
            store.resolve(token)
            auth.append((time.perf_counter() - started) * 1000)
        codec = time_codec(args.runs // 4)
        limiter = time_limiter(redis_store.connect(settings), args.runs)
        routes = time_route_limiter(redis_store.connect(settings), settings, args.runs)
        redactor = Redactor(settings.pii_entities, settings.pii_score_threshold, settings.pii_use_ner)
        redaction = []
        for _ in range(200):
            started = time.perf_counter()
            redactor.redact(QUESTION)
            redaction.append((time.perf_counter() - started) * 1000)
    finally:
        red.stop()
        shutil.rmtree(work, ignore_errors=True)
    rows = (
        ("auth (resolve key)", auth),
        ("codec (one query)", codec),
        ("question redaction", redaction),
        ("limiter (admit+settle)", limiter),
        ("route limiter (upload)", routes),
    )
    for name, values in rows:
        print(
            f"{name:<22} p50 {pct(values, 50):6.2f} ms   p95 {pct(values, 95):6.2f} ms   p99 {pct(values, 99):6.2f} ms"
        )
    combined = [a + c for a, c in zip(auth, codec, strict=False)]
    print(f"edge_auth_p95_ms={pct(auth, 95):.2f}")
    print(f"edge_codec_p95_ms={pct(codec, 95):.2f}")
    print(f"edge_auth_codec_p95_ms={pct(combined, 95):.2f}")
    print(f"question_redaction_p95_ms={pct(redaction, 95):.2f}")
    print(f"limiter_p99_ms={pct(limiter, 99):.2f}")
    print(f"route_limiter_p99_ms={pct(routes, 99):.2f}")


if __name__ == "__main__":
    main()
