"""Every Redis key Keel writes, in one place, each carrying the tenant where it is tenant data.

The tenant is the key's hash tag (`keel:doc:{acme}:d1`): on a Redis Cluster all of a tenant's
keys live in one slot, so every script and transaction over them runs there, whole. A job's keys
are tagged by the job, and the rest are single keys that no script combines with another. (Keys
written before the tags, by 0.1 releases, are renamed by `keel admin migrate-redis`:
`stores.key_layout`.)

Values are text: one client (`stores.redis`) decodes every reply, so no module handles bytes.
"""

from __future__ import annotations


def doc_key(tenant: str, doc_id: str) -> str:
    """Hash: the document's published version, in-flight version, title, counts."""
    return f"keel:doc:{{{tenant}}}:{doc_id}"


def tenant_docs_key(tenant: str) -> str:
    """Set of the tenant's document ids."""
    return f"keel:docs:{{{tenant}}}"


def doc_versions_key(tenant: str, doc_id: str) -> str:
    """Set: every version of the document ever begun, so a deletion finds each one's leftovers."""
    return f"keel:docv:{{{tenant}}}:{doc_id}"


def ingesting_key(tenant: str, version: str) -> str:
    """String with a TTL: the workflow run that is ingesting these bytes now (`Catalog.claim`)."""
    return f"keel:ingesting:{{{tenant}}}:{version}"


def generation_key(tenant: str) -> str:
    """Integer: the tenant's index generation; readers see points visible at this generation."""
    return f"keel:gen:{{{tenant}}}"


def term_df_key(tenant: str) -> str:
    """Hash: BM25 term id -> how many of the tenant's published chunks hold it (`stores.term_stats`)."""
    return f"keel:bm25:{{{tenant}}}:df"


def term_totals_key(tenant: str) -> str:
    """Hash: `chunks` and `terms` over the tenant's published chunks (BM25's N and mean length)."""
    return f"keel:bm25:{{{tenant}}}:totals"


def publish_lock_key(tenant: str) -> str:
    return f"keel:lock:publish:{{{tenant}}}"


def job_key(job_id: str) -> str:
    return f"keel:job:{{{job_id}}}"


def job_files_key(job_id: str) -> str:
    """Hash: path -> outcome JSON for each file of a job."""
    return f"keel:job:{{{job_id}}}:files"


JOBS_INDEX = "keel:jobs"  # sorted set of job ids by creation time


def query_candidates_key(tenant: str, request_id: str) -> str:
    """Hash: point id -> candidate JSON, for the steps of one query (expires with QUERY_STATE_TTL)."""
    return f"keel:q:{{{tenant}}}:{request_id}:candidates"


def query_stream_key(tenant: str, request_id: str) -> str:
    """Stream: one query's events (sources, tokens, done) for the API to relay as Server-Sent Events."""
    return f"keel:q:{{{tenant}}}:{request_id}:stream"


def conversations_key(tenant: str, owner: str) -> str:
    """Sorted set: the conversations a principal (a key id) owns, by last activity."""
    return f"keel:conv:{{{tenant}}}:{owner}"


def pii_vault_key(tenant: str) -> str:
    """Hash: pseudonym token -> its original, sealed with the tenant's data key (`stores.pii_vault`)."""
    return f"keel:pii:{{{tenant}}}:vault"


def pii_refs_key(tenant: str) -> str:
    """Hash: pseudonym token -> how many of the tenant's documents hold it."""
    return f"keel:pii:{{{tenant}}}:refs"


def pii_doc_key(tenant: str, doc_id: str) -> str:
    """Set: the pseudonym tokens a document holds (what its deletion releases)."""
    return f"keel:pii:{{{tenant}}}:doc:{doc_id}"


def breaker_key(provider: str) -> str:
    """Hash: a provider's circuit-breaker state, shared by every worker."""
    return f"keel:breaker:{{{provider}}}"


def breaker_trial_key(provider: str) -> str:
    """String with a TTL: held by the caller making a half-open breaker's trial call."""
    return f"keel:breaker:{{{provider}}}:trial"


QUERY_STATE_TTL_S = 3600  # long enough for a retried step; short enough not to keep tenant text around


def prompt_stats_key(prompt_id: str) -> str:
    """Hash: per prompt version, JSON answers, parse errors and repairs (parse_error_rate)."""
    return f"keel:prompt:{prompt_id}:stats"


SEMANTIC_PENDING = "keel:semantic:pending"  # list: cache points an API process hands to the worker (caches.handover)
TENANTS_KEY = "keel:tenants"  # set of tenants that have started at least one ingest


def tenant_patterns(tenant: str) -> tuple[str, ...]:
    """SCAN patterns of every key holding the tenant's data (erasure). Tenant names are checked
    (`keel.tenancy`), so no name is a glob and `a` never matches `a-b`'s keys."""
    scanned = tuple(
        f"keel:{kind}:{{{tenant}}}:*"
        for kind in ("doc", "docv", "dd", "q", "bm25", "mig", "cache", "ans", "ingesting", "conv", "pii")
    )
    singles = (
        tenant_docs_key(tenant),
        generation_key(tenant),
        index_key(tenant),
        migrations_key(tenant),
        feedback_key(tenant),
        data_key_key(tenant),
    )
    return (*scanned, *singles, restoring_key(tenant), *_limiter_counters(tenant))


def _limiter_counters(tenant: str) -> tuple[str, ...]:
    """The limiter's counters of the tenant and of its keys, queries and route families alike."""
    return (f"keel:rl:{{{tenant}}}:*",)


def tenant_record_patterns(tenant: str) -> tuple[str, ...]:
    """Keys of Keel's records of a tenant that a backup holds (`pipelines.backup`): what an erasure
    removes but the transient query state, and the index of its API keys, its audit log, its
    limits, its guardrail policy and its prompt releases (an erasure keeps those)."""
    # queries' state, caches, ingests in flight
    transient = (
        f"keel:q:{{{tenant}}}:*",
        f"keel:cache:{{{tenant}}}:*",
        f"keel:ingesting:{{{tenant}}}:*",
        f"keel:conv:{{{tenant}}}:*",  # conversations live in Temporal; a restore has none to index
        restoring_key(tenant),
        *_limiter_counters(tenant),
        data_key_key(tenant),
    )
    kept = tuple(p for p in tenant_patterns(tenant) if p not in transient)
    configured = (tenant_limits_key(tenant), guard_key(tenant), prompt_releases_key(tenant))
    return (*kept, tenant_api_keys_key(tenant), audit_key(tenant), audit_denied_key(tenant), *configured)


def owned(key: str, tenant: str) -> bool:
    """Is `key` one of the tenant's record keys? Exact, never a glob: a pattern's `*` is only ever
    the rest of a key that starts with the pattern's prefix, so no tenant's name matches another
    tenant's or a global key."""
    return any(matches(key, p) for p in tenant_record_patterns(tenant))


def matches(key: str, pattern: str) -> bool:
    """`pattern` is a whole key, or a prefix ending at a separator (`:` or `/`) and then `*`."""
    if pattern.endswith((":*", "/*")):
        return key.startswith(pattern[:-1]) and len(key) > len(pattern) - 1
    return key == pattern


def data_key_key(tenant: str) -> str:
    """String: the tenant's data key, wrapped (`stores.data_keys`). Erased with the tenant, never
    backed up: a restore must not revive a key an erasure destroyed."""
    return f"keel:dek:{{{tenant}}}"


def restoring_key(tenant: str) -> str:
    """String: the snapshot a restore of the tenant is writing (a retry of it may go on over it)."""
    return f"keel:restoring:{{{tenant}}}"


# -- the index lifecycle (index.active, index.lifecycle): per tenant ---------------------------
def index_key(tenant: str) -> str:
    """Hash: the tenant's active index (encoder name), the side index a migration fills, and the
    replaced index kept for a rollback until `previous_until`. Absent: the default index."""
    return f"keel:index:{{{tenant}}}"


def migration_key(tenant: str, migration_id: str) -> str:
    """Hash: one migration's state, progress, gate figures and timings."""
    return f"keel:mig:{{{tenant}}}:{migration_id}"


def shadow_key(tenant: str, migration_id: str) -> str:
    """Hash: sums over the shadow queries of a migration (count, overlap@10, rank correlation)."""
    return f"keel:mig:{{{tenant}}}:{migration_id}:shadow"


def migrations_key(tenant: str) -> str:
    """Sorted set: the tenant's migration ids by start time."""
    return f"keel:migs:{{{tenant}}}"


# -- answer caches (caches/): per tenant; an entry's key carries its whole scope, hashed -------
def cache_prefix(tenant: str, layer: str) -> str:
    """Strings under it: one entry of a cache layer (exact, semantic) each, named by the SHA-1 of
    its digest and generation (`caches.entries`)."""
    return f"keel:cache:{{{tenant}}}:{layer}:"


def cache_pattern(tenant: str) -> str:
    """SCAN pattern of every key of the tenant's answer caches."""
    return f"keel:cache:{{{tenant}}}:*"


def cache_doc_key(tenant: str, doc_id: str) -> str:
    """Set: the cache entries that cite a document (a deletion removes them with it)."""
    return f"keel:cache:{{{tenant}}}:doc:{doc_id}"


def cache_lru_key(tenant: str) -> str:
    """Sorted set: the tenant's cache entries by last use (eviction, within the tenant only)."""
    return f"keel:cache:{{{tenant}}}:lru"


def cache_stats_key(tenant: str) -> str:
    """Hash: hits and misses by layer, stores, evictions, purges, flagged entries."""
    return f"keel:cache:{{{tenant}}}:stats"


# -- the dedupe registry (index.dedupe): per tenant and access-group scope ---------------------
def dedupe_prefix(tenant: str, scope: str) -> str:
    return f"keel:dd:{{{tenant}}}:{scope}"


def dedupe_exact_key(prefix: str, fingerprint: str) -> str:
    """String: the owner (doc, version, chunk) of a paragraph's exact text."""
    return f"{prefix}:exact:{fingerprint}"


def dedupe_band_key(prefix: str, band: int, band_hash: str) -> str:
    """Set: owners whose MinHash signature has this LSH band."""
    return f"{prefix}:band:{band}:{band_hash}"


def dedupe_signature_key(prefix: str, owner: str) -> str:
    """String: an owner's MinHash signature, base64 (`msig`: the raw-bytes `sig` keys are retired)."""
    return f"{prefix}:msig:{owner}"


def dedupe_holders_key(prefix: str, owner: str) -> str:
    """Set: chunks of other documents that skipped this owner's text as a duplicate."""
    return f"{prefix}:holders:{owner}"


def dedupe_held_key(prefix: str, doc_id: str, version: str) -> str:
    """Set: chunk indexes of a document version that others hold as duplicates."""
    return f"{prefix}:held:{doc_id}:{version}"


# -- the edge (gateway): API keys and the audit log -------------------------------------------
def api_key_key(key_id: str) -> str:
    """Hash: one API key's digest (never the key), tenant, roles, groups, name, created/revoked."""
    return f"keel:apikey:{key_id}"


def tenant_api_keys_key(tenant: str) -> str:
    """Set: the ids of a tenant's API keys."""
    return f"keel:apikeys:{{{tenant}}}"


def audit_key(tenant: str) -> str:
    """Stream: a tenant's security events (keys created and revoked, erasures, restores, releases).
    Never trimmed by count: nothing an outsider does can push an entry out of it."""
    return f"keel:audit:{{{tenant}}}"


def audit_denied_key(tenant: str) -> str:
    """Stream: the tenant's denied requests, capped (`gateway.audit.DENIED_MAX`): anyone who knows a
    key id can add to it, so it has a stream of its own."""
    return f"keel:audit:{{{tenant}}}:denied"


def codec_session_key(digest: str) -> str:
    """String: the key id behind a codec session cookie (by the cookie's SHA-256; it expires)."""
    return f"keel:codecsess:{digest}"


def limit_key(tenant: str, scope: str, scope_id: str, what: str) -> str:
    """The limiter's state for a key or a tenant: GCRA times (`rpm`, `tpm`), in-flight requests
    (a sorted set by expiry), a month's spend in micro-dollars (`spent:<YYYYMM>`). A key's state
    carries its tenant's tag too: one admission checks both in one script, so in one slot."""
    return f"keel:rl:{{{tenant}}}:{scope}:{scope_id}:{what}"


def tenant_limits_key(tenant: str) -> str:
    """String: a tenant's limits as JSON (set by an operator: `keel tenants limits`)."""
    return f"keel:limits:{{{tenant}}}"


UNATTRIBUTED_AUDIT = "keel:audit:-"  # denied requests whose key names no tenant (operators read it)


# -- answers and their feedback (stores.feedback): per tenant ----------------------------------
def answer_key(tenant: str, request_id: str) -> str:
    """String (JSON): what one answer was made of (no question, no answer text), for its feedback."""
    return f"keel:ans:{{{tenant}}}:{request_id}"


def feedback_key(tenant: str) -> str:
    """Hash: request id -> the feedback on that answer (JSON; the last one given counts)."""
    return f"keel:fb:{{{tenant}}}"


def cache_sizes_key(tenant: str) -> str:
    """Hash: entry key -> its bytes (the tenant's cache memory is their sum, kept in its stats)."""
    return f"keel:cache:{{{tenant}}}:sizes"


def cache_generations_key(tenant: str) -> str:
    """Sorted set: the generations the tenant has entries of (older ones are swept)."""
    return f"keel:cache:{{{tenant}}}:gens"


def cache_generation_key(tenant: str, generation: int | str) -> str:
    """Set: the tenant's entries stored at one generation (swept once it moved on)."""
    return f"keel:cache:{{{tenant}}}:gen:{generation}"


def guard_key(tenant: str) -> str:
    """Hash: the tenant's guardrail policy (`stores.guard_policy`)."""
    return f"keel:guard:{{{tenant}}}"


def prompt_releases_key(scope: str) -> str:
    """Hash: `<family>:<label>` -> prompt version, for a tenant or "*" (`stores.prompt_releases`)."""
    return f"keel:prompts:{{{scope}}}"
