"""The payload codec: sealed with the active key, opened with any key of the ring; a plain payload
is refused by a sealed deployment and passes only where old histories are replayed."""

from __future__ import annotations

import base64
import secrets

import pytest
from temporalio.api.common.v1 import Payload

from keel.config import Settings
from temporal.codec import ENCODING, EncryptionCodec, KeyRing, PlainPayloadRefused, load_key_ring
from temporal.data_converter import DATA_CONVERTER

PLAIN = DATA_CONVERTER.payload_converter.to_payloads([{"question": "card 4111 1111 1111 1111?"}])[0]


async def test_seal_open_and_rotate() -> None:
    old = KeyRing(active="k1", keys={"k1": secrets.token_bytes(32)})
    sealed = (await EncryptionCodec(old).encode([PLAIN]))[0]
    assert sealed.metadata["encoding"] == ENCODING and b"4111" not in sealed.SerializeToString()
    rotated = KeyRing(active="k2", keys={**old.keys, "k2": secrets.token_bytes(32)})
    codec = EncryptionCodec(rotated)
    assert (await codec.decode([sealed]))[0] == PLAIN  # an old key still opens old payloads
    assert (await codec.encode([PLAIN]))[0].metadata["encryption-key-id"] == b"k2"
    with pytest.raises(PlainPayloadRefused):  # a sealed deployment opens only what it sealed
        await codec.decode([PLAIN])
    legacy = EncryptionCodec(rotated, refuse_plain=False)
    assert (await legacy.decode([PLAIN]))[0] == PLAIN  # a history from before the codec, replayed
    tampered = Payload(metadata=dict(sealed.metadata), data=sealed.data[:-1] + bytes([sealed.data[-1] ^ 1]))
    with pytest.raises(Exception):  # noqa: B017 - cryptography's InvalidTag
        await codec.decode([tampered])


def test_key_ring_is_made_once_and_private(tmp_path: object) -> None:
    settings = Settings(data_dir=tmp_path)  # type: ignore[arg-type]
    first = load_key_ring(settings)
    assert load_key_ring(settings) == first
    assert settings.codec_keys_file.stat().st_mode & 0o077 == 0
    env = Settings(data_dir=tmp_path, codec_key=base64.b64encode(b"k" * 32).decode())  # type: ignore[arg-type]
    assert load_key_ring(env).keys == {"env": b"k" * 32}
