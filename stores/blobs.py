"""Content and intermediate artefacts, addressed by key, so workflow histories carry keys only.

A directory under the data dir by default (shared storage when workers run on several hosts).
Writes are atomic (temp file + rename), so a worker killed mid-write leaves the old value or none.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

_SAFE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/=-]*$")


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        if not _SAFE_KEY.match(key) or ".." in key.split("/"):
            raise ValueError(f"unsafe blob key {key!r}")
        return self.root / key

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def put_json(self, key: str, value: Any) -> None:
        self.put(key, json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())

    def get_json(self, key: str) -> Any:
        return json.loads(self.get(key))

    def delete(self, key: str) -> int:
        """Remove a blob, or a folder of them; returns how many files went."""
        path = self._path(key)
        if path.is_dir():
            count = sum(1 for p in path.rglob("*") if p.is_file())
            shutil.rmtree(path, ignore_errors=True)
            return count
        if path.is_file():
            path.unlink(missing_ok=True)
            return 1
        return 0


def raw_key(tenant: str, version: str, doc_id: str) -> str:
    """Per document as well as per bytes: two sources with the same bytes each own their copy, so
    one being published (and its raw bytes deleted) never takes the other's away."""
    return f"raw/{tenant}/{version}/{doc_id}"


def work_key(tenant: str, version: str, name: str) -> str:
    return f"work/{tenant}/{version}/{name}"


def work_dir(tenant: str, version: str) -> str:
    return f"work/{tenant}/{version}"


def tenant_dirs(tenant: str) -> tuple[str, ...]:
    """The folders holding a tenant's blobs (erasure)."""
    return (f"raw/{tenant}", f"work/{tenant}")


def manifest_dir(job_id: str) -> str:
    return f"manifests/{job_id}"


def manifest_page_key(job_id: str, page: int) -> str:
    return f"manifests/{job_id}/{page:06d}.json"
