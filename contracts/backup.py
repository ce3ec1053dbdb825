"""BackupTenantWorkflow and RestoreTenantWorkflow: what to copy where, and what was copied."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(kw_only=True)
class BackupInput:
    tenant: str
    directory: str  # absolute, on the worker's filesystem; the tenant's folder is made inside it


@dataclass(kw_only=True)
class BackupOutput:
    tenant: str
    folder: str  # where the snapshot is (`<directory>/<tenant>`)
    generation: int  # the tenant's index generation the snapshot holds
    index: str  # the encoder name of the index backed up (the tenant's active one)
    embedding_version: str
    points: int
    redis_keys: int
    blobs: int
    bytes: int


@dataclass(kw_only=True)
class RestoreInput:
    folder: str  # one tenant's snapshot (`<directory>/<tenant>`), absolute
    tenant: str  # the tenant the snapshot must be of (checked against its manifest)
    api_keys: bool = False  # bring back its API keys too (credentials: only when the operator says so)


@dataclass(kw_only=True)
class RestoreOutput:
    tenant: str
    generation: int
    index: str
    points: int
    redis_keys: int
    blobs: int
