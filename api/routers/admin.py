"""A tenant admin's routes: its API keys, its audit log, its guardrail policy, its erasure. An
admin manages its own tenant only."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any, Literal

from fastapi import APIRouter, Request, status
from pydantic import BaseModel, Field

from api.deps import AdminCaller, RedisDep, SettingsDep, TemporalDep
from api.errors import request_id
from api.schemas import TenantErasedOut
from app import index as migrations
from app.delete import erase_tenant, erase_workflow_id
from app.query import default_guard_policy
from contracts.index import GoldenQuery
from gateway.audit import Audit
from gateway.keys import OPERATOR, KeyRecord, KeyStore
from gateway.limits import Limits
from keel.errors import BadInput, RoleForbidden
from stores import guard_policy

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
    if OPERATOR in body.roles:  # the deployment's role: no tenant's admin grants it
        raise RoleForbidden(
            "operator keys are made by the deployment's operators (`keel keys create`), not by a tenant"
        )
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


# -- the tenant's embedding index (app.index) ----------------------------------------------------
class GoldenBody(BaseModel):
    query: str
    relevant: dict[str, int]  # document source (or its file stem) -> grade


class MigrationBody(BaseModel):
    to: str  # an encoder name the operator configured (GET /v1/admin/index lists them)
    golden: list[GoldenBody] = []
    max_drop: float = Field(default=0.01, ge=0, le=1)
    min_overlap: float = Field(default=0.0, ge=0, le=1)
    shadow_wait_s: float | None = Field(default=None, ge=0, le=24 * 3600)
    auto_flip: bool = True
    force: bool = False
    retention_s: float | None = Field(default=None, ge=0, le=90 * 24 * 3600)


@router.get("/index")
async def index_state(settings: SettingsDep, r: RedisDep, admin: AdminCaller) -> dict[str, Any]:
    """Which index the tenant reads and writes, and the encoders it may migrate to."""
    life = migrations.lifecycle(settings, r)
    state = await asyncio.to_thread(life.state, admin.tenant)
    return {"index": asdict(state), "encoders": sorted(life.catalog)}


@router.post("/index/migrations", status_code=status.HTTP_202_ACCEPTED)
async def start_migration(
    body: MigrationBody, request: Request, settings: SettingsDep, temporal: TemporalDep, r: RedisDep, admin: AdminCaller
) -> dict[str, Any]:
    """Start moving the tenant to another encoder's index (backfill, gate, flip); 409 while one runs."""
    migration_id, handle = await migrations.start_migration(
        temporal,
        settings,
        r,
        admin.tenant,
        body.to,
        golden=[GoldenQuery(query=g.query, relevant=g.relevant) for g in body.golden],
        max_drop=body.max_drop,
        min_overlap=body.min_overlap,
        shadow_wait_s=body.shadow_wait_s,
        auto_flip=body.auto_flip,
        force=body.force,
        retention_s=body.retention_s,
        actor=admin.key_id,
        request_id=request_id(request),
    )
    return {
        "migration_id": migration_id,
        "workflow_id": handle.id,
        "temporal_ui": settings.temporal_ui_link(handle.id),
        "request_id": request_id(request),
    }


@router.get("/index/migrations/{migration_id}")
async def migration(migration_id: str, settings: SettingsDep, r: RedisDep, admin: AdminCaller) -> dict[str, Any]:
    """A migration's state, progress (chunks done, per second, ETA), disk estimate and gate
    figures; `latest` names the newest."""
    wanted = "" if migration_id == "latest" else migration_id
    return await asyncio.to_thread(migrations.migration_record, settings, r, admin.tenant, wanted)


@router.post("/index/migrations/{action}", status_code=status.HTTP_202_ACCEPTED)
async def migration_action(
    action: str, request: Request, settings: SettingsDep, temporal: TemporalDep, r: RedisDep, admin: AdminCaller
) -> dict[str, Any]:
    """`approve` (flip although the gate did not pass), `cancel` (before the flip: nothing users read
    changes), `rollback` (back to the replaced index, at once), `release` (end the retention now)."""
    rid = request_id(request)
    if action == "rollback":
        return {**await migrations.rollback(temporal, settings, r, admin.tenant, admin.key_id, rid), "request_id": rid}
    actions = {"approve": migrations.approve, "cancel": migrations.cancel, "release": migrations.release}
    if action not in actions:
        raise BadInput(f"unknown action {action!r}; one of approve, cancel, rollback, release")
    await actions[action](temporal, r, admin.tenant, admin.key_id, rid)
    return {"action": action, "request_id": rid}


class GuardBody(BaseModel):
    questions: Literal["flag", "refuse"] | None = None  # a question that reads as instructions to the model
    sources: Literal["quote", "exclude", "allow"] | None = None  # a source chunk that does
    moderation: Literal["allow", "flag", "refuse"] | None = None  # unsafe content in a question or answer
    severe: Literal["allow", "flag", "refuse"] | None = None  # its severe forms
    grounding: Literal["flag", "retry", "extractive"] | None = None  # a model's answer with unsupported claims
    # Per entity type found in documents and questions: a keyed token, a placeholder, or as written.
    pii: dict[str, Literal["pseudonymise", "redact", "keep"]] | None = Field(default=None, max_length=64)


class GuardOut(BaseModel):
    tenant: str
    questions: str
    sources: str
    moderation: str
    severe: str
    grounding: str
    pii: dict[str, str]


@router.get("/guard", response_model=GuardOut)
async def read_guard(r: RedisDep, settings: SettingsDep, admin: AdminCaller) -> GuardOut:
    policy = await asyncio.to_thread(guard_policy.read, r, admin.tenant, default_guard_policy(settings))
    return _guard_out(admin.tenant, policy)


def _guard_out(tenant: str, policy: guard_policy.GuardPolicy) -> GuardOut:
    return GuardOut(tenant=tenant, **{**asdict(policy), "pii": policy.pii_actions()})


@router.put("/guard", response_model=GuardOut)
async def set_guard(
    body: GuardBody, request: Request, r: RedisDep, settings: SettingsDep, admin: AdminCaller
) -> GuardOut:
    """The tenant's guardrail policy; in force on every process within a few seconds (for PII: on
    documents ingested and questions asked from then on)."""
    changes = {k: v for k, v in body.model_dump().items() if v is not None and k != "pii"}
    pii = body.pii or {}
    if unknown := sorted(set(pii) - set(settings.pii_entities)):
        raise BadInput(
            f"pii: {', '.join(unknown)} is not an entity type found here; one of {', '.join(settings.pii_entities)}"
        )
    policy = await asyncio.to_thread(
        guard_policy.write, r, admin.tenant, default_guard_policy(settings), pii=pii, **changes
    )
    if pii:
        changes["pii"] = ",".join(f"{e}={a}" for e, a in sorted(pii.items()))
    await asyncio.to_thread(
        Audit(r).record,
        admin.tenant,
        "guard_policy_set",
        key_id=admin.key_id,
        request_id=request_id(request),
        **changes,
    )
    return _guard_out(admin.tenant, policy)
