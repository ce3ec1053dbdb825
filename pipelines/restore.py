"""Bringing a tenant's snapshot (`pipelines.backup`) back, into a stack where it has no data.

The manifest's signature is checked with the deployment's key ring (a snapshot is only taken as
this deployment, or one sharing its keys, wrote it), every file against the manifest's checksum,
and every record and point against the tenant, before anything is written: a snapshot writes
only the tenant's own kinds of keys (`stores.keys.tenant_record_patterns`, matched exactly, never
as globs), never another tenant's keys or points. API keys come back only when the operator asks
(`restore_api_keys`), and a key this stack knows keeps the state it has here (a key revoked since
stays revoked). The
points go into the collection of the same encoder, which this stack must have configured with the
same embedding version; then the records; the generation last, so readers see nothing until
everything is there. A restore stopped half-way is redone by running it again (a marker in Redis
names the snapshot being written, and lets that same one go on over what it wrote).
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from contracts.backup import RestoreOutput
from encoders.sparse import Sparse
from index.active import ActiveIndex
from keel.errors import BadInput, RestoreConflict
from keel.keyring import KeyRing, load_key_ring
from keel.tenancy import check_tenant
from pipelines.backup import FILES, FORMAT, MANIFEST_PURPOSE, PAGE, canonical, locked, sha256_of
from pipelines.deps import Deps
from stores import key_layout, snapshot
from stores.blobs import tenant_dirs
from stores.keys import (
    TENANTS_KEY,
    api_key_key,
    audit_denied_key,
    audit_key,
    generation_key,
    owned,
    restoring_key,
    tenant_api_keys_key,
    tenant_docs_key,
    tenant_limits_key,
)
from vectorstore.base import ChunkPoint, Cond, Where


class Restorer:
    def __init__(self, deps: Deps) -> None:
        self.d = deps

    def restore(self, folder: Path, tenant: str, restore_api_keys: bool = False) -> RestoreOutput:
        check_tenant(tenant)
        manifest = read_manifest(folder, tenant, load_key_ring(self.d.settings))
        index = self._index_for(manifest)
        r = self.d.redis
        marker = str(manifest["sha256"]["points.jsonl"])
        with locked(r, tenant) as renew:
            self._check_empty(tenant, index, marker)
            records = self._load_records(folder / "redis.jsonl", tenant, restore_api_keys)  # checked before any write
            r.set(restoring_key(tenant), marker)  # a retry of this restore may go on over it
            points = self._read_points(folder / "points.jsonl", index, tenant, renew)
            keys = self._write_records(records, renew)
            blobs = self._read_blobs(folder / "blobs.tar", tenant)
            r.sadd(TENANTS_KEY, tenant)  # listed first: a listed tenant with no generation reads as empty
            pipe = r.pipeline(transaction=True)  # the tenant's own keys, in its slot
            pipe.set(generation_key(tenant), int(manifest["generation"]))  # last: readers see it all at once
            pipe.delete(restoring_key(tenant))
            pipe.execute()
        return RestoreOutput(
            tenant=tenant,
            generation=int(manifest["generation"]),
            index=index.name,
            points=points,
            redis_keys=keys,
            blobs=blobs,
        )

    def _index_for(self, manifest: dict[str, Any]) -> ActiveIndex:
        wanted = manifest["index"]
        if wanted["name"] not in self.d.indexes.catalog:
            raise BadInput(f"the snapshot's index uses encoder {wanted['name']!r}, which this stack does not configure")
        index = self.d.indexes.index(wanted["name"])
        if index.version.key != wanted["embedding_version"]:
            raise BadInput(
                f"encoder {wanted['name']!r} here embeds as {index.version.key}, the snapshot's vectors are "
                f"{wanted['embedding_version']}: configure the same model (or restore, then migrate)"
            )
        return self.d.indexes.ensure(index)

    def _check_empty(self, tenant: str, index: ActiveIndex, marker: str) -> None:
        """Refuse a tenant with data here, unless it is this same restore stopped half-way (redone)."""
        r = self.d.redis
        if r.get(restoring_key(tenant)) == marker:
            return
        has_points = self.d.store.count(index.collection, Where(must=(Cond("tenant", value=tenant),))) > 0
        if r.exists(generation_key(tenant)) or r.scard(tenant_docs_key(tenant)) or has_points:
            raise RestoreConflict(f"tenant {tenant!r} already has data here: erase it first, or restore elsewhere")

    def _read_points(self, path: Path, index: ActiveIndex, tenant: str, renew: Callable[[], None]) -> int:
        count, batch = 0, []
        with path.open("rb") as f:
            for line in f:
                row = json.loads(line)
                if row["payload"].get("tenant") != tenant:
                    raise BadInput(
                        f"the snapshot holds a point of {row['payload'].get('tenant')!r}, not tenant {tenant!r}'s"
                    )
                dense = [float(x) for x in row["dense"]]
                if len(dense) != index.version.dim:
                    raise BadInput(f"a point's vector has {len(dense)} dimensions, the index {index.version.dim}")
                indices, values = row["sparse"]
                batch.append(
                    ChunkPoint(id=str(row["id"]), dense=dense, sparse=Sparse(indices, values), payload=row["payload"])
                )
                if len(batch) >= PAGE:
                    count += self._upsert(index, batch, renew)
                    batch = []
        return count + self._upsert(index, batch, renew)

    def _upsert(self, index: ActiveIndex, points: list[ChunkPoint], renew: Callable[[], None]) -> int:
        if points:
            self.d.store.upsert(index.collection, points)
            renew()
        return len(points)

    def _load_records(self, path: Path, tenant: str, restore_api_keys: bool) -> list[dict[str, Any]]:
        """The snapshot's records to write, each checked to be the tenant's. What governs access
        now wins over the snapshot: an API key, the audit log or the limits that exist here (an
        erasure keeps them) stay as they are, so a restore never revives a revoked key or drops
        what the log recorded since; the set of the tenant's keys gains the snapshot's. The
        generation is left for last."""
        r = self.d.redis
        kept_if_present = {audit_key(tenant), audit_denied_key(tenant), tenant_limits_key(tenant)}
        records = []
        with path.open("rb") as f:
            for line in f:
                record = json.loads(line)
                # A 0.1 backup names keys without their tenant's tag: read under today's names.
                key = record["key"] = key_layout.tagged(str(record["key"]), lambda _key_id: tenant) or ""
                if not _belongs(record, tenant):
                    raise BadInput(f"the snapshot holds {key!r}, which is not tenant {tenant!r}'s")
                if record["type"] not in snapshot.TYPES:
                    raise BadInput(f"the snapshot holds a {record['type']!r} record, which Keel never writes")
                if key == generation_key(tenant):
                    continue
                if not restore_api_keys and (key == tenant_api_keys_key(tenant) or key.startswith(api_key_key(""))):
                    continue  # keys are credentials: only on the operator's word
                if key.startswith(api_key_key("")):
                    owner = r.hget(key, "tenant")
                    if owner is not None and owner != tenant:
                        raise RestoreConflict(f"API key {key.rsplit(':', 1)[1]} belongs to another tenant here")
                    if owner is not None:
                        continue
                elif key in kept_if_present and r.exists(key):
                    continue
                record["merge"] = key == tenant_api_keys_key(tenant)
                records.append(record)
        return records

    def _write_records(self, records: list[dict[str, Any]], renew: Callable[[], None]) -> int:
        pipe = self.d.redis.pipeline(transaction=False)
        for i, record in enumerate(records, 1):
            snapshot.restore(pipe, record, replace=not record.get("merge"))
            if i % 500 == 0:
                pipe.execute()
                renew()
        pipe.execute()
        return len(records)

    def _read_blobs(self, path: Path, tenant: str) -> int:
        allowed = tuple(f"{d}/" for d in tenant_dirs(tenant))
        count = 0
        with tarfile.open(path, mode="r") as tar:
            for member in tar.getmembers():
                if not member.isfile() or not member.name.startswith(allowed):
                    raise BadInput(f"the snapshot's blobs hold {member.name!r}, outside the tenant's folders")
                data = tar.extractfile(member)
                assert data is not None  # a regular file
                self.d.blobs.put(member.name, data.read())  # the blob store refuses unsafe names
                count += 1
        return count


def read_manifest(folder: Path, tenant: str, ring: KeyRing) -> dict[str, Any]:
    """The snapshot's manifest, once its signature holds, every file matches its checksum and the
    tenant is the one asked for."""
    try:
        manifest: dict[str, Any] = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise BadInput(f"{folder} holds no readable snapshot manifest: {exc}") from exc
    if not isinstance(manifest, dict) or not ring.verify(
        MANIFEST_PURPOSE, canonical(manifest), str(manifest.get("signature", ""))
    ):
        raise BadInput(
            f"the snapshot in {folder} is not signed by this deployment's key ring: it was altered, or "
            "taken by a deployment with other keys (restore with that deployment's KEEL_CODEC_KEY or key ring)"
        )
    if manifest.get("format") != FORMAT:
        raise BadInput(f"snapshot format {manifest.get('format')!r}; this Keel reads format {FORMAT}")
    if manifest.get("tenant") != tenant:
        raise BadInput(f"the snapshot in {folder} is of tenant {manifest.get('tenant')!r}, not {tenant!r}")
    for name in FILES:
        if sha256_of(folder / name) != manifest.get("sha256", {}).get(name):
            raise BadInput(f"{folder / name} does not match its checksum: the snapshot is damaged or altered")
    return manifest


def _belongs(record: dict[str, Any], tenant: str) -> bool:
    """Is the record's key one of the tenant's own kinds of keys? Each pattern is matched exactly:
    a pattern's `*` stands for the rest of the key after the tenant's prefix, so no tenant's name
    (`publish`, `key`, ...) makes another tenant's or a global key match. An API key's record must
    name the tenant in its `tenant` field."""
    key = str(record["key"])
    if key.startswith(api_key_key("")):
        value = record.get("value")
        return record["type"] == "hash" and isinstance(value, dict) and value.get("tenant") == tenant
    return owned(key, tenant)
