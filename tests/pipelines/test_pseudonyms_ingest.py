"""Ingestion with pseudonyms on: a document's names are the tenant's tokens in every chunk, and
their originals are in its vault, sealed, until the document goes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import redis

from guardrails.pseudonyms import Pseudonyms, tokens_in
from keel import ids
from keel.config import Settings
from pipelines.deps import Deps, build_offload, build_vault
from pipelines.ingest import IngestSteps, local_document
from stores.keys import pii_vault_key

pytestmark = [pytest.mark.stack]
NOTE = b"# Approvals\n\nScott Derrickson approved the Q3 budget. Ask Scott Derrickson at scott@example.com.\n"


@pytest.mark.parametrize("apart", [False, True], ids=["in-process", "offload-process"])
def test_names_become_the_tenants_tokens_and_their_originals_go_to_the_vault(
    settings: Settings, redis_client: redis.Redis, deps: Deps, tenant: str, apart: bool
) -> None:
    vault = build_vault(settings, redis_client)
    offload = build_offload(settings.model_copy(update={"ingest_processes": 1})) if apart else None
    steps = IngestSteps(dataclasses.replace(deps, vault=vault, offload=offload))
    doc = local_document(tenant, Path("approvals.md"), NOTE)
    try:
        prepared = steps.prepare(doc, ids.document_id(tenant, doc.source), NOTE)
    finally:
        if offload is not None:
            offload.close()

    text = " ".join(c.text for c in prepared.kept)
    scott = Pseudonyms(vault.secret(tenant)).token("PERSON", "Scott Derrickson")
    assert text.count(scott) == 2 and "Derrickson" not in text and "example.com" not in text
    assert prepared.pii == {"PERSON": 2, "EMAIL_ADDRESS": 1}
    found = tokens_in(text)
    assert vault.reveal(tenant, found)[scott] == "Scott Derrickson" and len(found) == 2
    assert "Derrickson" not in " ".join(str(v) for v in redis_client.hvals(pii_vault_key(tenant)))

    assert vault.forget_document(tenant, ids.document_id(tenant, doc.source)) == 2
    assert vault.reveal(tenant, found) == {}
