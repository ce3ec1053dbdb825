"""Encrypted workflow histories: a payload codec that seals every payload with AES-GCM.

Temporal stores what a workflow is given and returns (questions, passages, answers) in its
history for the retention period; with this codec the server, its database and its UI only ever
hold ciphertext. Each payload is sealed with the active key and carries that key's id in its
metadata, so keys can rotate: a new key becomes active, the old ones stay to open older payloads.
A payload without the encrypted encoding is refused (`refuse_plain`, the default of a sealed
deployment): whoever reaches Temporal without the key cannot start or signal a workflow with
payloads of their own. Histories written before the codec replay with `refuse_plain` off. Failure
messages and stack traces travel sealed as well (the data converter encodes a failure's
attributes into a payload, which this codec seals).

Keys: `KEEL_CODEC_KEY` (base64 of 32 bytes), else a key ring file (`<data dir>/codec-keys.json`,
mode 0600, `{"active": id, "keys": {id: base64}}`) that the first process to start creates.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from keel.keyring import KeyRing, load_key_ring

__all__ = ["EncryptionCodec", "KeyRing", "load_key_ring"]

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12


class PlainPayloadRefused(ValueError):
    pass


class EncryptionCodec(PayloadCodec):
    def __init__(self, ring: KeyRing, refuse_plain: bool = True) -> None:
        self.ring = ring
        self.refuse_plain = refuse_plain
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
            if self.refuse_plain:
                raise PlainPayloadRefused("a plain payload reached a sealed deployment: refused")
            return payload  # written before the codec: plain
        kid = payload.metadata.get(KEY_ID, b"").decode()
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise ValueError(f"payload sealed with unknown key {kid!r}; add it to the key ring")
        data = payload.data
        return Payload.FromString(cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], None))
