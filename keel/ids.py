"""Deterministic ids: the same input always gives the same id, so every write is idempotent."""

from __future__ import annotations

import hashlib
import re
import uuid

_POINT_NAMESPACE = uuid.UUID("6f1c8a52-0d4e-4c55-9a53-2f3f0b9d6b11")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def document_id(tenant: str, source: str) -> str:
    """The logical document: stable across versions, so a changed file replaces its old chunks."""
    return hashlib.sha256(f"{tenant}\x00{source}".encode()).hexdigest()[:32]


def point_id(tenant: str, doc_id: str, version: str, chunk_index: int, embedding_version: str) -> str:
    """One point per (tenant, document, bytes, chunk, embedding version): a retry rewrites it."""
    return str(uuid.uuid5(_POINT_NAMESPACE, f"{tenant}/{doc_id}/{version}/{chunk_index}/{embedding_version}"))


def ingest_workflow_id(tenant: str, version: str) -> str:
    return f"ingest/{tenant}/{version}"


def ingest_group_workflow_id(job_id: str, page: int, index: int) -> str:
    """A group of a batch's documents, named by where its first one is in the job's manifest."""
    return f"ingest-group/{job_id}/{page}-{index}"


# Workflows named by their tenant (`<kind>/<tenant>/...`), and those named by a job whose id starts
# with its tenant (`<kind>/<tenant>.<job>...`). An erasure's own workflow is not bound to the
# tenant: it must still replay once the tenant's key is gone.
_BY_TENANT = ("query", "ingest", "delete", "backup", "restore", "migrate", "conversation")
_BY_JOB = ("ingest-batch", "ingest-group")
_TENANT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def query_workflow_id(tenant: str, request_id: str) -> str:
    return f"query/{tenant}/{request_id}"


def workflow_tenant(workflow_id: str) -> str | None:
    """The tenant whose data a workflow of this id handles, or None (not one tenant's, or an id
    from before jobs were named by their tenant)."""
    kind, _, rest = workflow_id.partition("/")
    first = rest.split("/", 1)[0]
    if kind in _BY_JOB:
        first = first.split(".", 1)[0] if "." in first else ""
    elif kind not in _BY_TENANT:
        return None
    return first if _TENANT.match(first) else None
