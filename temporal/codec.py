"""Encrypted workflow histories: a payload codec that seals every payload with AES-GCM.

Temporal stores what a workflow is given and returns (questions, passages, answers) in its
history for the retention period; with this codec the server, its database and its UI only ever
hold ciphertext. Each payload is sealed with the active key and carries that key's id in its
metadata, so keys can rotate: a new key becomes active, the old ones stay to open older payloads.
A payload without the encrypted encoding (histories written before the codec) passes through, so
old histories keep replaying.

Keys: `KEEL_CODEC_KEY` (base64 of 32 bytes), else a key ring file (`<data dir>/codec-keys.json`,
mode 0600, `{"active": id, "keys": {id: base64}}`) that the first process to start creates.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from keel.config import Settings

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12


@dataclass(frozen=True)
class KeyRing:
    active: str
    keys: dict[str, bytes]


class EncryptionCodec(PayloadCodec):
    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring
        self._ciphers = {kid: AESGCM(key) for kid, key in ring.keys.items()}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.seal(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.open(p) for p in payloads]

    def seal(self, payload: Payload) -> Payload:
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._ciphers[self.ring.active].encrypt(nonce, payload.SerializeToString(), None)
        return Payload(metadata={"encoding": ENCODING, KEY_ID: self.ring.active.encode()}, data=nonce + sealed)

    def open(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # written before the codec: plain
        kid = payload.metadata.get(KEY_ID, b"").decode()
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise ValueError(f"payload sealed with unknown key {kid!r}; add it to the key ring")
        data = payload.data
        return Payload.FromString(cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], None))


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
