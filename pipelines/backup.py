"""A tenant's snapshot: its points, Keel's records of it in Redis, and its blobs, in one folder.

    <directory>/<tenant>/
      manifest.json   what the snapshot is: tenant, generation, index and embedding version,
                      counts, and the SHA-256 of every other file, signed with the deployment's
                      key ring (`keel.keyring`): a restore checks the signature, then the files
      points.jsonl    every point readers see at that generation: id, dense and BM25 vectors, payload
      redis.jsonl     the tenant's records (`stores.snapshot`): documents, BM25 statistics,
                      dedupe registry, generation, index state, migrations, API keys (their
                      digests), limits and audit log; never query state, which is transient
      blobs.tar       the redacted chunks of its published documents (deletion and dedupe read
                      them); never an upload's raw bytes or an ingest's work files in flight

It is read under the tenant's publish lock (extended while it runs), so no publish, deletion or
migration step moves the generation in between: the points, the statistics and the records
agree. Qdrant's own snapshots are not used: Qdrant Edge restores snapshots but cannot make them,
and a server snapshot is a whole collection, every tenant in it, while this is one tenant's,
portable between Edge and a server and between index layouts. Files are written 0600 in a 0700
folder: they hold the tenant's (redacted) text.

`pipelines.restore` brings a snapshot back.
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

import redis

from contracts.backup import BackupOutput
from encoders.sparse import Sparse
from index.active import ActiveIndex, IndexState
from index.visibility import visible_at
from keel.keyring import load_key_ring
from keel.tenancy import check_tenant
from pipelines.deps import Deps
from stores import snapshot
from stores.blobs import work_key
from stores.keys import doc_key, generation_key, index_key, publish_lock_key, tenant_docs_key

FORMAT = 1
MANIFEST_PURPOSE = "snapshot-manifest"
REDACTED = "redacted.json"  # a version's redacted chunks (pipelines.ingest writes them)
FILES = ("points.jsonl", "redis.jsonl", "blobs.tar")
LOCK_S = 120  # the publish lock's lease, renewed after each page while a snapshot is read
PAGE = 512


@contextmanager
def locked(r: redis.Redis, tenant: str) -> Iterator[Callable[[], None]]:
    """The tenant's publish lock for a whole snapshot; the block renews the lease as it goes."""
    lock = r.lock(publish_lock_key(tenant), timeout=LOCK_S, blocking_timeout=LOCK_S)
    if not lock.acquire():
        raise TimeoutError(f"tenant {tenant!r}'s publish lock stayed taken for {LOCK_S} s")
    try:
        yield lambda: lock.extend(LOCK_S, replace_ttl=True)
    finally:
        lock.release()  # raises if the lease ran out: then the snapshot may not be consistent


class Snapshots:
    def __init__(self, deps: Deps, progress: Callable[[str, int], None] = lambda what, n: None) -> None:
        self.d = deps
        self.progress = progress  # (what, how many so far): the activity heartbeats it

    def backup(self, tenant: str, directory: Path) -> BackupOutput:
        check_tenant(tenant)
        folder = directory / tenant
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
        r = self.d.redis
        with locked(self.d.redis, tenant) as renew:
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
            "sha256": {name: sha256_of(folder / name) for name in FILES},
        }
        manifest["signature"] = load_key_ring(self.d.settings).sign(MANIFEST_PURPOSE, canonical(manifest))
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
        """The redacted chunks of each published version: all that a restored tenant reads back.
        Raw uploads and the work files of ingests in flight stay out (they hold unredacted text)."""
        root = self.d.blobs.root
        count = 0
        with _private(path) as out, tarfile.open(fileobj=out, mode="w") as tar:
            for version in sorted(self._published_versions(tenant)):
                file = root / work_key(tenant, version, REDACTED)
                if file.is_file():
                    tar.add(file, arcname=str(file.relative_to(root)), recursive=False)
                    count += 1
        return count

    def _published_versions(self, tenant: str) -> set[str]:
        r = self.d.redis
        pipe = r.pipeline(transaction=False)
        for doc_id in sorted(r.smembers(tenant_docs_key(tenant))):
            pipe.hget(doc_key(tenant, str(doc_id)), "version")
        return {str(v) for v in pipe.execute() if v}


def canonical(manifest: dict[str, Any]) -> bytes:
    """The manifest's bytes as signed: every field but the signature, keys sorted."""
    return json.dumps({k: v for k, v in manifest.items() if k != "signature"}, sort_keys=True).encode()


def sha256_of(path: Path) -> str:
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
