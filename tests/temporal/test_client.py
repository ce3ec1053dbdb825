"""How a process reaches Temporal: in the clear by default, over TLS or mTLS when configured."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.service import TLSConfig

from keel.config import Settings
from temporal.client import tls_config


def test_in_the_clear_unless_tls_or_an_api_key_is_asked_for() -> None:
    assert tls_config(Settings()) is False
    assert tls_config(Settings(temporal_tls=True)) is True
    assert tls_config(Settings(temporal_api_key="k")) is True  # an API key never travels in the clear


def test_mtls_reads_the_ca_certificate_and_key(tmp_path: Path) -> None:
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_bytes(f"-----{name}-----".encode())
    got = tls_config(
        Settings(
            temporal_tls_ca_file=tmp_path / "ca.pem",
            temporal_tls_cert_file=tmp_path / "cert.pem",
            temporal_tls_key_file=tmp_path / "key.pem",
            temporal_tls_server_name="temporal.internal",
        )
    )
    assert got == TLSConfig(
        server_root_ca_cert=b"-----ca.pem-----",
        client_cert=b"-----cert.pem-----",
        client_private_key=b"-----key.pem-----",
        domain="temporal.internal",
    )


def test_a_certificate_without_its_key_is_refused(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_bytes(b"x")
    with pytest.raises(ValueError, match="together"):
        tls_config(Settings(temporal_tls_cert_file=tmp_path / "cert.pem"))
