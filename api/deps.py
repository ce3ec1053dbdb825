"""Dependencies as Annotated aliases: settings, clients opened in the lifespan, the caller's tenant."""

from __future__ import annotations

from typing import Annotated

import redis
from fastapi import Depends, Header, Request
from temporalio.client import Client

from keel.config import Settings, get_settings
from keel.errors import RedisUnavailable, TemporalUnavailable
from keel.tenancy import check_groups, check_tenant


def _temporal(request: Request) -> Client:
    client: Client | None = getattr(request.app.state, "temporal", None)
    if client is None:
        raise TemporalUnavailable("Temporal was unreachable when the API started; restart the API once it is up")
    return client


def _redis(request: Request) -> redis.Redis:
    client: redis.Redis = request.app.state.redis
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        raise RedisUnavailable(f"Redis is unreachable: {exc}") from exc
    return client


def _tenant(x_keel_tenant: Annotated[str, Header(description="tenant the request acts for")]) -> str:
    # A header for now; an authenticated principal (API key -> tenant) replaces it later.
    return check_tenant(x_keel_tenant)


def _groups(x_keel_groups: Annotated[str, Header(description="comma-separated access groups")] = "") -> list[str]:
    return check_groups([g.strip() for g in x_keel_groups.split(",") if g.strip()])


SettingsDep = Annotated[Settings, Depends(get_settings)]
TemporalDep = Annotated[Client, Depends(_temporal)]
RedisDep = Annotated[redis.Redis, Depends(_redis)]
TenantDep = Annotated[str, Depends(_tenant)]
GroupsDep = Annotated[list[str], Depends(_groups)]
