"""A tenant's pseudonym vault: each token's original value, sealed, held while a document holds it.

The index, the caches, the workflow histories and every log see pseudonym tokens only
(`guardrails.pseudonyms`); the originals are here, each sealed with AES-GCM under the tenant's
data key (`stores.data_keys`), the tenant and the token bound to it as associated data, so Redis
alone reveals nothing and an erasure, which destroys the key, makes every original noise. A
document's tokens are recorded with it, and counted per token across documents: deleting the last
document that holds a token deletes its original.

The pseudonym secret is derived from the same data key, so tokens mean nothing without it and a
re-created tenant (a new key) gets new tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping

import redis
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from stores.data_keys import TenantKeys
from stores.keys import pii_doc_key, pii_refs_key, pii_vault_key

NONCE_BYTES = 12
_SECRET_INFO = b"keel pseudonyms v1"


class PiiVault:
    def __init__(self, r: redis.Redis, keys: TenantKeys) -> None:
        self.r = r
        self.keys = keys

    def secret(self, tenant: str) -> bytes:
        """The tenant's pseudonym secret (derived from its data key, never stored)."""
        _, key = self.keys.current(tenant)
        return hmac.new(key, _SECRET_INFO, hashlib.sha256).digest()

    def keep(self, tenant: str, doc_id: str, originals: Mapping[str, str]) -> int:
        """Record that `doc_id` holds these tokens, sealing each original not kept yet; returns
        how many tokens are new to the document."""
        if not originals:
            return 0
        key_id, key = self.keys.current(tenant)
        tokens = sorted(originals)
        pipe = self.r.pipeline()
        for token in tokens:
            pipe.sadd(pii_doc_key(tenant, doc_id), token)
        added = pipe.execute()
        pipe = self.r.pipeline()
        for token, new in zip(tokens, added, strict=True):
            pipe.hsetnx(pii_vault_key(tenant), token, self._seal(tenant, token, key_id, key, originals[token]))
            if new:
                pipe.hincrby(pii_refs_key(tenant), token, 1)
        pipe.execute()
        return sum(1 for new in added if new)

    def reveal(self, tenant: str, tokens: Iterable[str]) -> dict[str, str]:
        """The originals of the tokens the vault holds (the rest are left out)."""
        wanted = list(dict.fromkeys(tokens))
        if not wanted:
            return {}
        sealed = self.r.hmget(pii_vault_key(tenant), wanted)
        found: dict[str, str] = {}
        for token, value in zip(wanted, sealed, strict=True):
            if value is None:
                continue
            opened = self._open(tenant, token, str(value))
            if opened is not None:
                found[token] = opened
        return found

    def known(self, tenant: str, tokens: Iterable[str]) -> set[str]:
        """Which of these tokens some document of the tenant holds (a question's names are looked
        up by their tokens, so no plaintext index of names exists)."""
        wanted = list(dict.fromkeys(tokens))
        if not wanted:
            return set()
        held = self.r.hmget(pii_refs_key(tenant), wanted)
        return {t for t, n in zip(wanted, held, strict=True) if n is not None and int(n) > 0}

    def forget_document(self, tenant: str, doc_id: str) -> int:
        """The document no longer holds its tokens; the originals no document holds are deleted.
        Returns how many originals were deleted."""
        tokens = sorted(str(t) for t in self.r.smembers(pii_doc_key(tenant, doc_id)))
        if not tokens:
            return 0
        pipe = self.r.pipeline()
        for token in tokens:
            pipe.hincrby(pii_refs_key(tenant), token, -1)
        left = pipe.execute()
        gone = [t for t, n in zip(tokens, left, strict=True) if int(n) <= 0]
        pipe = self.r.pipeline()
        if gone:
            pipe.hdel(pii_vault_key(tenant), *gone)
            pipe.hdel(pii_refs_key(tenant), *gone)
        pipe.delete(pii_doc_key(tenant, doc_id))
        pipe.execute()
        return len(gone)

    def _seal(self, tenant: str, token: str, key_id: str, key: bytes, value: str) -> str:
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = AESGCM(key).encrypt(nonce, value.encode(), f"{tenant}/{token}/{key_id}".encode())
        return f"{key_id}.{base64.b64encode(nonce + sealed).decode()}"

    def _open(self, tenant: str, token: str, stored: str) -> str | None:
        key_id, _, data = stored.partition(".")
        key = self.keys.get(tenant, key_id)
        if key is None:  # the tenant's key is destroyed: the original is noise
            return None
        raw = base64.b64decode(data)
        plain = AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], f"{tenant}/{token}/{key_id}".encode())
        return plain.decode()
