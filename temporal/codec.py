"""Encrypted workflow histories: a payload codec that seals every payload with AES-GCM.

Temporal stores what a workflow is given and returns (questions, passages, answers) in its
history for the retention period; with this codec the server, its database and its UI only ever
hold ciphertext. A tenant's workflow seals its payloads with the tenant's own data key
(`stores.data_keys`), the tenant bound to each payload, so one tenant's credentials never open
another's, and an erasure, which destroys the key, leaves the tenant's histories unreadable.
Payloads of workflows that are no one tenant's are sealed with the deployment's key ring, each
with its key's id, so ring keys rotate: a new key becomes active, the old ones stay to open older
payloads (histories from before tenant keys replay with them too).
A payload without the encrypted encoding is refused (`refuse_plain`, the default of a sealed
deployment): whoever reaches Temporal without the key cannot start or signal a workflow with
payloads of their own. Histories written before the codec replay with `refuse_plain` off. Failure
messages and stack traces travel sealed as well (the data converter encodes a failure's
attributes into a payload, which this codec seals).

Keys: `KEEL_CODEC_KEY` (base64 of 32 bytes), else a key ring file (`<data dir>/codec-keys.json`,
mode 0600, `{"active": id, "keys": {id: base64}}`) that the first process to start creates.
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Sequence
from typing import Protocol

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec, SerializationContext, WithSerializationContext

from keel.ids import workflow_tenant
from keel.keyring import KeyRing, load_key_ring

__all__ = ["EncryptionCodec", "KeyRing", "load_key_ring"]

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12


TENANT = "keel-tenant"


class TenantKeysLike(Protocol):
    """Where a tenant's data key comes from (`stores.data_keys.TenantKeys`)."""

    def current(self, tenant: str) -> tuple[str, bytes]: ...

    def get(self, tenant: str, key_id: str, fresh: bool = False) -> bytes | None: ...


class PlainPayloadRefused(ValueError):
    pass


class TenantKeyGone(ValueError):
    """The tenant's data key is destroyed (the tenant was erased): its payloads are noise now."""


class WrongTenant(ValueError):
    """A payload sealed for one tenant reached a workflow or a caller of another."""


class EncryptionCodec(PayloadCodec, WithSerializationContext):
    """Seals payloads with the key of the tenant whose workflow they belong to (known from the
    workflow's id, `keel.ids.workflow_tenant`), the tenant bound to each as associated data; a
    payload of a workflow that is no one tenant's (an erasure, a test's) is sealed with the
    deployment's key ring. Opening checks the payload's tenant against the workflow's."""

    def __init__(
        self,
        ring: KeyRing,
        refuse_plain: bool = True,
        tenant_keys: TenantKeysLike | None = None,
        tenant: str | None = None,
    ) -> None:
        self.ring = ring
        self.refuse_plain = refuse_plain
        self.tenant_keys = tenant_keys
        self.tenant = tenant  # the workflow's tenant, from the serialization context
        self._ciphers = {kid: AESGCM(key) for kid, key in ring.keys.items()}

    def with_context(self, context: SerializationContext) -> EncryptionCodec:
        workflow_id = getattr(context, "workflow_id", None)
        tenant = workflow_tenant(workflow_id) if workflow_id else None
        if tenant == self.tenant:
            return self
        bound = copy.copy(self)
        bound.tenant = tenant
        return bound

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.seal(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.open(p) for p in payloads]

    def seal(self, payload: Payload, tenant: str | None = None) -> Payload:
        tenant = tenant or self.tenant
        nonce = secrets.token_bytes(NONCE_BYTES)
        if tenant and self.tenant_keys is not None:
            key_id, key = self.tenant_keys.current(tenant)
            sealed = AESGCM(key).encrypt(nonce, payload.SerializeToString(), tenant.encode())
            metadata = {"encoding": ENCODING, KEY_ID: key_id.encode(), TENANT: tenant.encode()}
            return Payload(metadata=metadata, data=nonce + sealed)
        sealed = self._ciphers[self.ring.active].encrypt(nonce, payload.SerializeToString(), None)
        return Payload(metadata={"encoding": ENCODING, KEY_ID: self.ring.active.encode()}, data=nonce + sealed)

    def open(self, payload: Payload, fresh: bool = False) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            if self.refuse_plain:
                raise PlainPayloadRefused("a plain payload reached a sealed deployment: refused")
            return payload  # written before the codec: plain
        kid = payload.metadata.get(KEY_ID, b"").decode()
        data = payload.data
        owner = payload.metadata.get(TENANT, b"").decode()
        if owner:
            if self.tenant and owner != self.tenant:
                raise WrongTenant(f"a payload of tenant {owner!r} reached a workflow of tenant {self.tenant!r}")
            key = self.tenant_keys.get(owner, kid, fresh=fresh) if self.tenant_keys is not None else None
            if key is None:
                raise TenantKeyGone(f"tenant {owner!r}'s data key is destroyed: the payload cannot be opened")
            return Payload.FromString(AESGCM(key).decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], owner.encode()))
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise ValueError(f"payload sealed with unknown key {kid!r}; add it to the key ring")
        return Payload.FromString(cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], None))


def tenant_of(payload: Payload) -> str | None:
    """The tenant a sealed payload is bound to (None: the deployment's key, or plain)."""
    return payload.metadata.get(TENANT, b"").decode() or None
