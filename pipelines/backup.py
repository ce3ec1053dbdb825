"""A tenant's snapshot: its points, Keel's records of it in Redis, and its blobs, in one folder.

    <directory>/<tenant>/
      manifest.json   what the snapshot is: tenant, generation, index and embedding version,
                      counts, and the SHA-256 of every other file (checked before a restore)
      points.jsonl    every point readers see at that generation: id, dense and BM25 vectors, payload
      redis.jsonl     the tenant's records (`stores.snapshot`): documents, BM25 statistics,
                      dedupe registry, generation, index state, migrations, API keys (their
                      digests), limits and audit log; never query state, which is transient
      blobs.tar       the tenant's stored files (redacted chunks that deletion and dedupe read)

It is read under the tenant's publish lock (extended while it runs), so no publish, deletion or
migration step moves the generation in between: the points, the statistics and the records
agree. Qdrant's own snapshots are not used: Qdrant Edge restores snapshots but cannot make them,
and a server snapshot is a whole collection, every tenant in it, while this is one tenant's,
portable between Edge and a server and between index layouts. Files are written 0600 in a 0700
folder: they hold the tenant's (redacted) text.

A restore goes into a stack where the tenant has nothing (or a restore of the same snapshot
stopped half-way, which it redoes): the points into the collection of the same encoder, which
this stack must have configured with the same embedding version, then the records, last the
generation, so readers see nothing until everything is there.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from contracts.backup import BackupOutput, RestoreOutput
from encoders.sparse import Sparse
from index.active import ActiveIndex, IndexState
from index.visibility import visible_at
from keel.errors import BadInput, RestoreConflict
from keel.tenancy import check_tenant
from pipelines.deps import Deps
from stores import snapshot
from stores.blobs import tenant_dirs
from stores.keys import (
    TENANTS_KEY,
    audit_key,
    generation_key,
    index_key,
    publish_lock_key,
    restoring_key,
    tenant_api_keys_key,
    tenant_docs_key,
    tenant_limits_key,
)
from vectorstore.base import ChunkPoint, Cond, Where

FORMAT = 1
FILES = ("points.jsonl", "redis.jsonl", "blobs.tar")
LOCK_S = 120  # the publish lock's lease, renewed after each page while a snapshot is read
PAGE = 512


class Snapshots:
    def __init__(self, deps: Deps, progress: Callable[[str, int], None] = lambda what, n: None) -> None:
        self.d = deps
        self.progress = progress  # (what, how many so far): the activity heartbeats it

    @contextmanager
    def _locked(self, tenant: str) -> Iterator[Callable[[], None]]:
        lock = self.d.redis.lock(publish_lock_key(tenant), timeout=LOCK_S, blocking_timeout=LOCK_S)
        if not lock.acquire():
            raise TimeoutError(f"tenant {tenant!r}'s publish lock stayed taken for {LOCK_S} s")
        try:
            yield lambda: lock.extend(LOCK_S, replace_ttl=True)
        finally:
            lock.release()  # raises if the lease ran out: then the snapshot may not be consistent

    # -- backup -------------------------------------------------------------------------------
    def backup(self, tenant: str, directory: Path) -> BackupOutput:
        check_tenant(tenant)
        folder = directory / tenant
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
        r = self.d.redis
        with self._locked(tenant) as renew:
            generation = int(r.get(generation_key(tenant)) or 0)
            index = self.d.indexes.active(tenant)
            points = self._write_points(folder / "points.jsonl", index, tenant, generation, renew)
            keys = self._dump_records(folder / "redis.jsonl", tenant, renew)
            blobs = self._write_blobs(folder / "blobs.tar", tenant)
        manifest = {
            "format": FORMAT,
            "tenant": tenant,
            "created_at": time.time(),
            "generation": generation,
            "index": {"name": index.name, "embedding_version": index.version.key, "dim": index.version.dim},
            "counts": {"points": points, "redis_keys": keys, "blobs": blobs},
            "sha256": {name: _sha256(folder / name) for name in FILES},
        }
        _write_private(folder / "manifest.json", json.dumps(manifest, indent=2).encode())
        size = sum((folder / name).stat().st_size for name in (*FILES, "manifest.json"))
        return BackupOutput(
            tenant=tenant,
            folder=str(folder),
            generation=generation,
            index=index.name,
            embedding_version=index.version.key,
            points=points,
            redis_keys=keys,
            blobs=blobs,
            bytes=size,
        )

    def _write_points(
        self, path: Path, index: ActiveIndex, tenant: str, generation: int, renew: Callable[[], None]
    ) -> int:
        store = self.d.store
        self.d.indexes.ensure(index)
        where = visible_at(tenant, generation, [])
        count, offset = 0, None
        with _private(path) as out:
            while True:
                hits, offset = store.scroll(index.collection, where, PAGE, offset, with_sparse=True, with_dense=True)
                for h in hits:
                    sparse = h.sparse or Sparse([], [])
                    row = {
                        "id": h.id,
                        "dense": h.dense,
                        "sparse": [sparse.indices, sparse.values],
                        "payload": h.payload,
                    }
                    out.write(json.dumps(row, separators=(",", ":")).encode() + b"\n")
                count += len(hits)
                self.progress("points", count)
                renew()
                if offset is None:
                    return count

    def _dump_records(self, path: Path, tenant: str, renew: Callable[[], None]) -> int:
        r = self.d.redis
        count = 0
        with _private(path) as out:
            for record in snapshot.dump(r, snapshot.tenant_keys(r, tenant)):
                if record["key"] == index_key(tenant):
                    # Only the active index is in the snapshot: a migration under way is not.
                    record["value"] = {"active": IndexState.of(record["value"]).active}
                out.write(json.dumps(record, separators=(",", ":")).encode() + b"\n")
                count += 1
                if count % 1000 == 0:
                    self.progress("redis_keys", count)
                    renew()
        return count

    def _write_blobs(self, path: Path, tenant: str) -> int:
        root = self.d.blobs.root
        count = 0
        with _private(path) as out, tarfile.open(fileobj=out, mode="w") as tar:
            for folder in tenant_dirs(tenant):
                base = root / folder
                if not base.is_dir():
                    continue
                for file in sorted(p for p in base.rglob("*") if p.is_file() and not p.name.startswith(".tmp-")):
                    tar.add(file, arcname=str(file.relative_to(root)), recursive=False)
                    count += 1
        return count

    # -- restore ------------------------------------------------------------------------------
    def restore(self, folder: Path, tenant: str) -> RestoreOutput:
        manifest = read_manifest(folder, tenant)
        index = self._index_for(manifest)
        r = self.d.redis
        marker = str(manifest["sha256"]["points.jsonl"])
        with self._locked(tenant) as renew:
            self._check_empty(tenant, index, marker)
            records = self._load_records(folder / "redis.jsonl", tenant)  # all checked before any write
            r.set(restoring_key(tenant), marker)  # a retry of this restore may go on over it
            points = self._read_points(folder / "points.jsonl", index, tenant, renew)
            keys = self._write_records(records, renew)
            blobs = self._read_blobs(folder / "blobs.tar", tenant)
            pipe = r.pipeline(transaction=True)
            pipe.set(generation_key(tenant), int(manifest["generation"]))  # last: readers see it all at once
            pipe.sadd(TENANTS_KEY, tenant)
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

    def _load_records(self, path: Path, tenant: str) -> list[dict[str, Any]]:
        """The snapshot's records to write, each checked to be the tenant's. What governs access
        now wins over the snapshot: an API key, the audit log or the limits that exist here (an
        erasure keeps them) stay as they are, so a restore never revives a revoked key or drops
        what the log recorded since; the set of the tenant's keys gains the snapshot's. The
        generation is left for last."""
        r = self.d.redis
        kept_if_present = {audit_key(tenant), tenant_limits_key(tenant)}
        records = []
        with path.open("rb") as f:
            for line in f:
                record = json.loads(line)
                key = str(record["key"])
                if not _belongs(record, tenant):
                    raise BadInput(f"the snapshot holds {key!r}, which is not tenant {tenant!r}'s")
                if record["type"] not in snapshot.TYPES:
                    raise BadInput(f"the snapshot holds a {record['type']!r} record, which Keel never writes")
                if key == generation_key(tenant):
                    continue
                if key.startswith("keel:apikey:"):
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


def read_manifest(folder: Path, tenant: str) -> dict[str, Any]:
    """The snapshot's manifest, once every file matches its checksum and the tenant is the one asked for."""
    try:
        manifest: dict[str, Any] = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise BadInput(f"{folder} holds no readable snapshot manifest: {exc}") from exc
    if manifest.get("format") != FORMAT:
        raise BadInput(f"snapshot format {manifest.get('format')!r}; this Keel reads format {FORMAT}")
    if manifest.get("tenant") != tenant:
        raise BadInput(f"the snapshot in {folder} is of tenant {manifest.get('tenant')!r}, not {tenant!r}")
    for name in FILES:
        if _sha256(folder / name) != manifest.get("sha256", {}).get(name):
            raise BadInput(f"{folder / name} does not match its checksum: the snapshot is damaged or altered")
    return manifest


def _belongs(record: dict[str, Any], tenant: str) -> bool:
    """Keel's keys name their tenant after their kind (`keel:<kind>:<tenant>[:...]`); an API key's
    record names it in its `tenant` field. A snapshot never writes another tenant's keys."""
    parts = str(record["key"]).split(":")
    if len(parts) < 3 or parts[0] != "keel":
        return False
    if parts[1] == "apikey":
        return record["type"] == "hash" and record["value"].get("tenant") == tenant
    return parts[2] == tenant


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def _private(path: Path) -> Iterator[Any]:
    """A file only the owner may read, written under a temporary name and renamed when whole."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_private(path: Path, data: bytes) -> None:
    with _private(path) as f:
        f.write(data)
