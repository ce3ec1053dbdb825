"""Each tenant's data key: what seals its workflow payloads, and what an erasure destroys.

A tenant's key is 32 random bytes made on first use, stored in Redis only wrapped (AES-GCM under
a key derived from the deployment's key ring, `keel.keyring`, with the tenant and the key's id as
associated data), so Redis alone opens nothing. `destroy` deletes it: every payload it sealed,
in any history Temporal still keeps, is unreadable from then on (crypto-shredding: an append-only
store cannot be made to forget, but what it holds can be made noise).

Keys are cached in the process for `ttl_s`, one second (a payload is sealed or opened per step of
every query: one Redis read a second per tenant and process instead of one per payload). The
second bounds how long a process goes on using a key an erasure destroyed: a payload it sealed
in that second cannot be opened later, so a tenant re-created within a second of its erasure may
see its first workflows fail. `fresh` reads skip the cache, as the codec endpoint does, so an
erased tenant's history stops decoding there at once.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Callable

import redis
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keel.keyring import KeyRing
from stores.keys import data_key_key

PURPOSE = "tenant-data-keys"
NONCE_BYTES = 12


class TenantKeys:
    def __init__(self, connect: Callable[[], redis.Redis], ring: KeyRing, ttl_s: float = 1.0) -> None:
        self._connect = connect  # made on first use: a converter is built before Redis is needed
        self._r: redis.Redis | None = None
        self.ring = ring
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, str, bytes]] = {}
        self._lock = threading.Lock()

    @property
    def r(self) -> redis.Redis:
        if self._r is None:
            self._r = self._connect()
        return self._r

    def current(self, tenant: str) -> tuple[str, bytes]:
        """(key id, key) that seals the tenant's new payloads, made now if it has none."""
        found = self._cached(tenant) or self._load(tenant)
        if found is None:  # the tenant's first payload: make its key, unless another process just did
            key_id, key = secrets.token_hex(4), secrets.token_bytes(32)
            record = json.dumps({"id": key_id, "kek": self.ring.active, "wrapped": self._wrap(tenant, key_id, key)})
            found = (key_id, key) if self.r.set(data_key_key(tenant), record, nx=True) else self._load(tenant)
            if found is None:
                raise KeyError(f"tenant {tenant!r}'s data key vanished as it was made")
        self._keep(tenant, *found)
        return found

    def get(self, tenant: str, key_id: str, fresh: bool = False) -> bytes | None:
        """The tenant's key `key_id`, or None once it is destroyed (or was never made)."""
        cached = None if fresh else self._cached(tenant)
        if cached is not None and cached[0] == key_id:
            return cached[1]
        found = self._load(tenant)
        if found is None or found[0] != key_id:
            return None
        self._keep(tenant, *found)
        return found[1]

    def destroy(self, tenant: str) -> bool:
        """Delete the tenant's key: what it sealed can never be opened again."""
        with self._lock:
            self._cache.pop(tenant, None)
        return bool(self.r.delete(data_key_key(tenant)))

    def _load(self, tenant: str) -> tuple[str, bytes] | None:
        raw = self.r.get(data_key_key(tenant))
        if raw is None:
            return None
        record = json.loads(str(raw))
        return record["id"], self._unwrap(tenant, record)

    def _wrap(self, tenant: str, key_id: str, key: bytes) -> str:
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = AESGCM(self.ring.derived(PURPOSE)).encrypt(nonce, key, f"{tenant}/{key_id}".encode())
        return base64.b64encode(nonce + sealed).decode()

    def _unwrap(self, tenant: str, record: dict[str, str]) -> bytes:
        data = base64.b64decode(record["wrapped"])
        kek = AESGCM(self.ring.derived(PURPOSE, record["kek"]))
        return kek.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], f"{tenant}/{record['id']}".encode())

    def _cached(self, tenant: str) -> tuple[str, bytes] | None:
        with self._lock:
            hit = self._cache.get(tenant)
        if hit is None or time.monotonic() - hit[0] > self.ttl_s:
            return None
        return hit[1], hit[2]

    def _keep(self, tenant: str, key_id: str, key: bytes) -> None:
        with self._lock:
            self._cache[tenant] = (time.monotonic(), key_id, key)
