"""The deployment's key ring: the secrets that seal workflow payloads and authenticate snapshots.

`KEEL_CODEC_KEY` (base64 of 32 bytes), else a key ring file (`<data dir>/codec-keys.json`, mode
0600, `{"active": id, "keys": {id: base64}}`) that the first process to start creates. Keys rotate:
a new key becomes active, the old ones stay to open (or check) what they sealed (or signed).
Each use derives its own key from a ring key (HKDF with the use's name), so a key that seals
payloads is never also the one that signs a snapshot's manifest.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from keel.config import Settings


@dataclass(frozen=True)
class KeyRing:
    active: str
    keys: dict[str, bytes]

    def derived(self, purpose: str, kid: str | None = None) -> bytes:
        """A 32-byte key for one `purpose`, from ring key `kid` (the active one by default)."""
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=f"keel/{purpose}".encode())
        return hkdf.derive(self.keys[kid or self.active])

    def sign(self, purpose: str, data: bytes) -> str:
        """`<kid>:<hex HMAC-SHA256>` of `data` with the active key's `purpose` key."""
        return f"{self.active}:{hmac.new(self.derived(purpose), data, hashlib.sha256).hexdigest()}"

    def verify(self, purpose: str, data: bytes, signature: str) -> bool:
        kid, _, mac = signature.partition(":")
        if kid not in self.keys:
            return False
        expected = hmac.new(self.derived(purpose, kid), data, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, mac)


def load_key_ring(settings: Settings) -> KeyRing:
    if settings.codec_key:
        return KeyRing(active="env", keys={"env": _key(settings.codec_key)})
    path = settings.codec_keys_file
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        kid = time.strftime("k%Y%m%d", time.gmtime())
        ring = {"active": kid, "keys": {kid: base64.b64encode(secrets.token_bytes(32)).decode()}}
        try:  # O_EXCL: two processes starting at once agree on one ring
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(ring, f)
        except FileExistsError:
            pass
    raw = json.loads(path.read_text())
    return KeyRing(active=raw["active"], keys={kid: _key(v) for kid, v in raw["keys"].items()})


def _key(b64: str) -> bytes:
    key = base64.b64decode(b64)
    if len(key) != 32:
        raise ValueError("a codec key is 32 bytes, base64-encoded")
    return key
