"""The dependency bundle: every client and model a process builds once, at start, never per call.

Built by the worker (and the benchmarks' plain loops) and handed to every activity class.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from encoders.registry import Encoders
from encoders.sparse import SparseEncoder
from guardrails.pii import Redactor
from index.active import DEFAULT_ENCODER, Indexes
from ingestion.chunk import CHUNKER_VERSION
from ingestion.offload import Offload, OffloadConfig
from keel.config import Settings
from stores import redis as redis_store
from stores.blobs import BlobStore
from stores.data_keys import TenantKeys
from stores.pii_vault import PiiVault
from vectorstore.base import VectorStore
from vectorstore.factory import open_store


@dataclass(kw_only=True)
class Deps:
    settings: Settings
    blobs: BlobStore
    redis: redis.Redis
    store: VectorStore
    indexes: Indexes  # which collection and encoder each tenant reads and writes
    encoders: Encoders  # every encoder this process has loaded, one copy each
    redactor: Redactor
    sparse: SparseEncoder
    offload: Offload | None = None  # parse and redaction in processes of their own (children start on first use)
    vault: PiiVault | None = None  # the tenants' pseudonym vaults (None: pseudonyms off, placeholders)

    def close(self) -> None:
        if self.offload is not None:
            self.offload.close()
        self.store.close()


def build_deps(settings: Settings) -> Deps:
    import transformers

    transformers.logging.set_verbosity_error()
    store = open_store(settings)
    encoders = Encoders(
        settings.torch_threads, settings.embed_batch_size, settings.data_dir / "models", settings.embed_pass_tokens
    )
    client = redis_store.connect(settings, connect_timeout=5)
    indexes = Indexes(store, client, encoders, settings, CHUNKER_VERSION)
    indexes.index(DEFAULT_ENCODER)  # the default model loads at start, not on the first request
    return Deps(
        settings=settings,
        blobs=BlobStore(settings.blob_dir),
        redis=client,
        store=store,
        indexes=indexes,
        encoders=encoders,
        redactor=Redactor(settings.pii_entities, settings.pii_score_threshold, settings.pii_use_ner),
        sparse=SparseEncoder(k1=settings.bm25_k1, b=settings.bm25_b),
        offload=build_offload(settings),
        vault=build_vault(settings, client) if settings.pii_pseudonyms else None,
    )


def build_vault(settings: Settings, client: redis.Redis) -> PiiVault:
    """The pseudonym vaults, their originals sealed with each tenant's data key."""
    from keel.keyring import load_key_ring  # the codec's key ring wraps the tenants' data keys

    return PiiVault(client, TenantKeys(lambda: client, load_key_ring(settings)))


def build_offload(settings: Settings) -> Offload | None:
    if settings.ingest_processes <= 0:
        return None
    return Offload(
        OffloadConfig(
            processes=settings.ingest_processes,
            nice=settings.ingest_nice,
            max_file_bytes=settings.max_file_bytes,
            decode_legacy_text=settings.decode_legacy_text,
            pii_entities=tuple(settings.pii_entities),
            pii_score_threshold=settings.pii_score_threshold,
            pii_use_ner=settings.pii_use_ner,
            parse_limit_s=settings.parse_limit_s,
            redact_limit_s=settings.redact_limit_s,
            memory_limit_bytes=settings.parse_memory_mb * 1024 * 1024,
            max_inflated_bytes=settings.max_inflated_bytes,
        )
    )
