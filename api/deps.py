"""Dependencies as Annotated aliases: settings, clients opened in the lifespan, the caller's tenant.

Redis is not pinged per request: a command that cannot reach it raises, and the error handlers
answer 503 `redis_unavailable` (whenever in the request it happens, not only at its start).
"""

from __future__ import annotations

from typing import Annotated

import redis
from fastapi import Depends, Header, Request
from temporalio.client import Client

from keel.config import Settings, get_settings
from keel.errors import TemporalUnavailable
from keel.tenancy import check_groups, check_tenant
from stores.blobs import BlobStore


def _temporal(request: Request) -> Client:
    client: Client | None = getattr(request.app.state, "temporal", None)
    if client is None:
        raise TemporalUnavailable("Temporal was unreachable when the API started; restart the API once it is up")
    return client


def _redis(request: Request) -> redis.Redis:
    client: redis.Redis = request.app.state.redis
    return client


def _blobs(request: Request, settings: Annotated[Settings, Depends(get_settings)]) -> BlobStore:
    blobs: BlobStore | None = getattr(request.app.state, "blobs", None)
    if blobs is None:  # one per app, made on first use (the lifespan makes it when it runs)
        blobs = request.app.state.blobs = BlobStore(settings.blob_dir)
    return blobs


def _tenant(x_keel_tenant: Annotated[str, Header(description="tenant the request acts for")]) -> str:
    # A header for now; an authenticated principal (API key -> tenant) replaces it later.
    return check_tenant(x_keel_tenant)


def _groups(x_keel_groups: Annotated[str, Header(description="comma-separated access groups")] = "") -> list[str]:
    return check_groups([g.strip() for g in x_keel_groups.split(",") if g.strip()])


SettingsDep = Annotated[Settings, Depends(get_settings)]
TemporalDep = Annotated[Client, Depends(_temporal)]
RedisDep = Annotated[redis.Redis, Depends(_redis)]
BlobsDep = Annotated[BlobStore, Depends(_blobs)]
TenantDep = Annotated[str, Depends(_tenant)]
GroupsDep = Annotated[list[str], Depends(_groups)]
