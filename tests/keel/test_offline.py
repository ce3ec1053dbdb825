"""Nothing reaches for the network: parsing, redaction and embedding all run with sockets closed."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from keel import offline
from tests.conftest import SAMPLES


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    yield


def test_unstructured_private_hooks_still_exist() -> None:
    """offline.patch_unstructured relies on these; a new unstructured that moves them must fail here."""
    from unstructured.nlp import tokenize

    for name in ("_load_spacy_model", "_install_spacy_model", "_SPACY_EXCLUDE", "_get_nlp"):
        assert hasattr(tokenize, name), f"unstructured.nlp.tokenize.{name} is gone; update keel/offline.py"


def test_download_hook_is_disabled() -> None:
    from unstructured.nlp import tokenize

    offline.patch_unstructured()
    with pytest.raises(offline.OfflineViolation):
        tokenize._install_spacy_model()


def test_spacy_model_is_installed() -> None:
    assert offline.spacy_model_dir() is not None


@pytest.mark.usefixtures("no_network")
def test_every_step_runs_offline() -> None:
    from encoders.dense import Embedder
    from guardrails.pii import Redactor
    from ingestion.parse import parse_document
    from keel.config import Settings

    settings = Settings()
    for path in sorted(SAMPLES.iterdir()):
        assert parse_document(path.read_bytes(), path.name, 10_000_000).elements
    redactor = Redactor(settings.pii_entities, settings.pii_score_threshold)
    assert "<EMAIL_ADDRESS>" in redactor.redact("write to a.b@example.org").text
    embedder = Embedder(settings.embedding_model_path, settings.embedding_model_id, threads=1)
    assert embedder.embed(["offline"]).shape == (1, 384)
