"""POST /codec/encode and /codec/decode: Temporal's remote codec protocol, for operators.

The Temporal UI (`--ui-codec-endpoint`, or its Data Encoder setting) and CLI
(`temporal workflow show --codec-endpoint http://127.0.0.1:8000/codec --codec-auth "Bearer $KEEL_ADMIN_KEY"`)
send Payloads as protobuf JSON and get them back decoded, so a failed run can still be read
and replayed. It needs an admin key: as a Bearer header (the CLI; a UI with login passing its
access token), or, for a UI without login (the dev server's), a session cookie: an operator opens
`/codec/login` once, pastes an admin key, and turns on "include cross-origin credentials" in the
UI's Data Encoder settings. The cookie holds a random session token (Redis keeps its hash and the
key id, for 8 hours); the key is re-checked on every call, so revoking it ends the session.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import AsyncIterator
from typing import Annotated, Literal

import redis
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from api.deps import AdminCaller, RedisDep, SettingsDep, check_role, limited, principal_of
from api.errors import request_id
from gateway.audit import Audit
from gateway.keys import ADMIN, OPERATOR, KeyStore, Principal
from keel.errors import BadInput, ErasedTenant, InvalidKey, MissingKey, RoleForbidden
from stores.data_keys import TenantKeys
from stores.keys import codec_session_key
from temporal.codec import ENCODING, EncryptionCodec, TenantKeyGone, load_key_ring, tenant_of

COOKIE = "keel_codec"
SESSION_S = 8 * 3600

router = APIRouter(prefix="/codec", tags=["ops"])


def _codec(request: Request, settings: SettingsDep) -> EncryptionCodec:
    codec: EncryptionCodec | None = getattr(request.app.state, "codec", None)
    if codec is None:
        ring = load_key_ring(settings)
        # Reading for a person: a plain payload (a history from before the codec) is shown as it is.
        keys = TenantKeys(lambda: request.app.state.redis, ring)
        codec = request.app.state.codec = EncryptionCodec(ring, refuse_plain=False, tenant_keys=keys)
    return codec


def _may_open(caller: Principal, payload: Payload) -> bool:
    """A tenant's admin opens its own tenant's payloads (and plain ones, which hide nothing); an
    operator opens any. A payload sealed with the deployment's key is no tenant's: operators only."""
    if OPERATOR in caller.roles:
        return True
    if payload.metadata.get("encoding") != ENCODING:
        return True
    return tenant_of(payload) == caller.tenant


def _session_principal(r: redis.Redis, cookie: str) -> Principal:
    key_id = r.get(codec_session_key(hashlib.sha256(cookie.encode()).hexdigest()))
    record = KeyStore(r).get(str(key_id)) if key_id else None
    if record is None:
        raise InvalidKey("the codec session is unknown or expired; open /codec/login again")
    if record.revoked_at is not None or not {ADMIN, OPERATOR} & set(record.roles):
        raise RoleForbidden("the key behind this codec session is revoked or no longer an admin")
    return record.principal()


async def _operator(request: Request, r: RedisDep, settings: SettingsDep) -> AsyncIterator[Principal]:
    """An admin (or an operator), by Bearer key or by codec session cookie, within the admin
    routes' limits."""
    if "authorization" in request.headers:
        admin = await principal_of(request)
        if OPERATOR not in admin.roles:
            await check_role(request, admin, ADMIN)
    else:
        cookie = request.cookies.get(COOKIE)
        if not cookie:
            raise MissingKey("send an admin key (`Authorization: Bearer keel_...`), or open /codec/login")
        admin = await asyncio.to_thread(_session_principal, r, cookie)
    async with limited(request, settings, admin, "admin"):
        yield admin


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
async def login_page() -> HTMLResponse:
    return HTMLResponse(LOGIN_PAGE)


@router.post("/session", status_code=204)
async def open_session(request: Request, r: RedisDep, admin: AdminCaller) -> Response:
    """Set the codec session cookie for this browser (an admin key in the Authorization header)."""
    token = secrets.token_urlsafe(32)
    digest = hashlib.sha256(token.encode()).hexdigest()
    await asyncio.to_thread(r.set, codec_session_key(digest), admin.key_id, ex=SESSION_S)
    await asyncio.to_thread(
        Audit(r).record, admin.tenant, "codec_session", key_id=admin.key_id, request_id=request_id(request)
    )
    response = Response(status_code=204)
    # Secure whenever the browser came over TLS (uvicorn reads X-Forwarded-Proto from a proxy it trusts).
    response.set_cookie(
        COOKIE,
        token,
        max_age=SESSION_S,
        httponly=True,
        samesite="strict",
        path="/codec",
        secure=request.url.scheme == "https",
    )
    return response


@router.delete("/session", status_code=204)
async def close_session(request: Request, r: RedisDep) -> Response:
    """Log out: the session ends on the server at once, and the browser drops its cookie."""
    cookie = request.cookies.get(COOKIE)
    if cookie:
        await asyncio.to_thread(r.delete, codec_session_key(hashlib.sha256(cookie.encode()).hexdigest()))
    response = Response(status_code=204)
    response.delete_cookie(
        COOKIE, path="/codec", httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )
    return response


@router.post("/{operation}")
async def transcode(
    operation: Literal["encode", "decode"],
    request: Request,
    settings: SettingsDep,
    r: RedisDep,
    admin: Annotated[Principal, Depends(_operator)],
) -> Response:
    try:
        payloads = json_format.Parse(await request.body(), Payloads())
    except json_format.ParseError as exc:
        raise BadInput(f"the body is not Payloads as protobuf JSON: {exc}") from None
    codec = _codec(request, settings)
    operator = OPERATOR in admin.roles
    withheld = 0
    try:
        if operation == "encode":  # a tenant's admin seals for its own tenant only
            out = [codec.seal(p, tenant=None if operator else admin.tenant) for p in payloads.payloads]
        else:  # another tenant's payload stays sealed: its caller learns nothing from it
            out = []
            for p in payloads.payloads:
                mine = _may_open(admin, p)
                withheld += not mine
                out.append(await asyncio.to_thread(codec.open, p, fresh=True) if mine else p)
    except TenantKeyGone as exc:
        raise ErasedTenant(f"{exc}: the tenant was erased") from None
    except Exception as exc:  # a tampered payload or a key the ring does not hold
        raise BadInput(f"the payloads could not be {operation}d: {type(exc).__name__}") from None
    # Every use is on the record: who opened (or sealed) how many payloads, and when.
    await asyncio.to_thread(
        Audit(r).record,
        admin.tenant,
        f"codec_{operation}",
        key_id=admin.key_id,
        request_id=request_id(request),
        payloads=len(out),
        withheld=withheld,
    )
    return Response(json_format.MessageToJson(Payloads(payloads=out)), media_type="application/json")


LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Keel codec session</title>
<style>body{font:15px system-ui,sans-serif;max-width:36em;margin:3em auto}input{width:100%;padding:.4em}</style>
</head><body>
<h1>Decode payloads in the Temporal UI</h1>
<p>Paste an admin API key. This browser gets a session cookie for the codec endpoint (8 hours);
the key itself is not stored. Then, in the Temporal UI's Data Encoder settings, turn on
<em>Include cross-origin credentials</em>.</p>
<form id="f"><input id="k" type="password" autocomplete="off" placeholder="keel_..."><p><button>Open session</button></p></form>
<p id="out"></p>
<script>
document.getElementById("f").onsubmit = async (e) => {
  e.preventDefault();
  const r = await fetch("/codec/session", {method: "POST", credentials: "same-origin",
    headers: {"Authorization": "Bearer " + document.getElementById("k").value.trim()}});
  document.getElementById("k").value = "";
  document.getElementById("out").textContent = r.ok ? "Session open: reload the Temporal UI."
    : "Refused (" + r.status + "): " + ((await r.json()).error || {}).message;
};
</script></body></html>
"""
