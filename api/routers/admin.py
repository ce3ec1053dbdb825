"""A tenant admin's routes: its API keys, its audit log, its erasure. An admin manages its own tenant only."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request, status
from pydantic import BaseModel

from api.deps import AdminCaller, RedisDep, SettingsDep, TemporalDep
from api.errors import request_id
from api.schemas import TenantErasedOut
from app.delete import erase_tenant, erase_workflow_id
from gateway.audit import Audit
from gateway.keys import KeyRecord, KeyStore
from gateway.limits import Limits
from keel.errors import BadInput

router = APIRouter(prefix="/v1/admin", tags=["admin"])


class LimitsBody(BaseModel):
    rpm: int | None = None
    tpm: int | None = None
    concurrent: int | None = None
    budget_usd: float | None = None


class KeyBody(BaseModel):
    roles: list[str]
    groups: list[str] = []
    name: str = ""
    limits: LimitsBody = LimitsBody()


class KeyOut(BaseModel):
    key_id: str
    tenant: str
    roles: list[str]
    groups: list[str]
    name: str
    created_at: float
    revoked_at: float | None = None
    limits: LimitsBody = LimitsBody()


class KeyCreated(KeyOut):
    api_key: str  # shown once: only its hash is kept


class AuditOut(BaseModel):
    id: str
    at: float
    event: str
    key_id: str
    request_id: str
    detail: dict[str, Any]


def _out(record: KeyRecord) -> dict[str, Any]:
    fields = {**vars(record), "limits": LimitsBody(**asdict(record.limits))}
    return KeyOut(**fields).model_dump()


@router.post("/keys", status_code=status.HTTP_201_CREATED, response_model=KeyCreated)
async def create_key(body: KeyBody, request: Request, r: RedisDep, admin: AdminCaller) -> KeyCreated:
    record, token = await asyncio.to_thread(
        KeyStore(r).create,
        tenant=admin.tenant,
        roles=body.roles,
        groups=body.groups,
        name=body.name,
        limits=Limits(**body.limits.model_dump()),
    )
    await asyncio.to_thread(
        Audit(r).record,
        admin.tenant,
        "key_created",
        key_id=admin.key_id,
        request_id=request_id(request),
        created=record.key_id,
        roles=record.roles,
        groups=record.groups,
    )
    return KeyCreated(**_out(record), api_key=token)


@router.get("/keys", response_model=list[KeyOut])
async def list_keys(r: RedisDep, admin: AdminCaller) -> list[KeyOut]:
    return [KeyOut(**_out(k)) for k in await asyncio.to_thread(KeyStore(r).list, admin.tenant)]


@router.delete("/keys/{key_id}", response_model=KeyOut)
async def revoke_key(key_id: str, request: Request, r: RedisDep, admin: AdminCaller) -> KeyOut:
    record = await asyncio.to_thread(KeyStore(r).revoke, key_id, admin.tenant)
    await asyncio.to_thread(
        Audit(r).record,
        admin.tenant,
        "key_revoked",
        key_id=admin.key_id,
        request_id=request_id(request),
        revoked=key_id,
    )
    return KeyOut(**_out(record))


@router.get("/audit", response_model=list[AuditOut])
async def audit_log(r: RedisDep, admin: AdminCaller, limit: int = 100) -> list[AuditOut]:
    entries = await asyncio.to_thread(Audit(r).read, admin.tenant, limit)
    return [AuditOut(**vars(e)) for e in entries]


class EraseBody(BaseModel):
    confirm: str  # the tenant's name, typed out: an erasure cannot be undone


@router.post("/tenant/erase", response_model=TenantErasedOut)
async def erase(
    body: EraseBody, request: Request, settings: SettingsDep, temporal: TemporalDep, r: RedisDep, admin: AdminCaller
) -> TenantErasedOut:
    """Remove every document, point, blob and job of the key's tenant. Its keys and audit log stay
    (revoke the keys with DELETE /v1/admin/keys/{id}); a second erasure finds nothing."""
    if body.confirm != admin.tenant:
        raise BadInput(f'to erase tenant {admin.tenant!r}, send {{"confirm": "{admin.tenant}"}}')
    erased = await erase_tenant(temporal, settings, r, admin, request_id(request))
    return TenantErasedOut(**vars(erased), workflow_id=erase_workflow_id(admin.tenant), request_id=request_id(request))
