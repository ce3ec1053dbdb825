"""The deployment's key ring: keys derived per purpose, signatures that only the ring makes."""

from __future__ import annotations

from keel.keyring import KeyRing

RING = KeyRing(active="k2", keys={"k1": b"\x01" * 32, "k2": b"\x02" * 32})


def test_each_purpose_has_its_own_key() -> None:
    assert RING.derived("backups") != RING.derived("tenant-data-keys")
    assert RING.derived("backups") == RING.derived("backups", "k2")
    assert RING.derived("backups", "k1") != RING.derived("backups", "k2")


def test_a_signature_verifies_only_for_its_data_purpose_and_ring() -> None:
    signature = RING.sign("manifest", b"data")
    assert RING.verify("manifest", b"data", signature)
    assert not RING.verify("manifest", b"datA", signature)
    assert not RING.verify("other", b"data", signature)
    stranger = KeyRing(active="k2", keys={"k2": b"\x03" * 32})
    assert not stranger.verify("manifest", b"data", signature)
