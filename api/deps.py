"""Dependencies as Annotated aliases: settings, clients opened in the lifespan, the caller.

The caller is a principal resolved from `Authorization: Bearer <key>`: tenant, roles and groups
come from the key, never from a header (`X-Keel-Groups` may only narrow the groups). Every denial
(no key, a bad or revoked one, a role or group the key lacks) is written to the audit log.

Redis is not pinged per request: a command that cannot reach it raises, and the error handlers
answer 503 `redis_unavailable` (whenever in the request it happens, not only at its start).
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import os
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeVar

import redis
from fastapi import Depends, Header, Request
from temporalio.client import Client

from api.errors import request_id
from app.query import answer_config
from caches.entries import Entries
from caches.exact import ExactCache
from caches.guard import Guard
from caches.handover import HandOver
from caches.semantic import SemanticCache
from gateway.admission import Admission
from gateway.audit import Audit
from gateway.keys import ADMIN, INGEST, QUERY, KeyStore, Principal
from gateway.limits import Limiter, Limits
from guardrails.pii import Redactor
from keel.config import Settings, get_settings
from keel.errors import Forbidden, InvalidKey, RoleForbidden, TemporalUnavailable, Unauthorized
from stores.blobs import BlobStore
from stores.data_keys import TenantKeys
from stores.pii_vault import PiiVault
from temporal.codec import load_key_ring


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


def default_in_flight(settings: Settings) -> int:
    """Two queries a core (one on the CPU, one waiting on Redis or the index), within the query
    activity slots. More than that only queues inside the process: on 2 cores, 8 at once gave
    16-17 answers a second and 4 gave 21 (`make bench-load`), the threads fighting for the GIL."""
    return max(1, min(settings.max_concurrent_query_activities, 2 * (os.cpu_count() or 1)))


def admission_of(app: Any, settings: Settings) -> Admission:
    """The process's query admission (one per app, made on first use)."""
    admission: Admission | None = getattr(app.state, "admission", None)
    if admission is None:
        limit = settings.query_max_in_flight or default_in_flight(settings)
        admission = app.state.admission = Admission(
            limit, settings.query_queue, settings.query_admission_wait_ms / 1000
        )
    return admission


def _admission(request: Request, settings: Annotated[Settings, Depends(get_settings)]) -> Admission:
    return admission_of(request.app, settings)


def _limiter(request: Request, settings: Annotated[Settings, Depends(get_settings)]) -> Limiter:
    """The limits of keys and tenants, shared through Redis by every API process (one per app)."""
    limiter: Limiter | None = getattr(request.app.state, "limiter", None)
    if limiter is None:
        limiter = request.app.state.limiter = Limiter(
            request.app.state.redis, settings.limiter_fail_open, Limits.of(settings.tenant_default_limits)
        )
    return limiter


def exact_cache_of(app: Any, settings: Settings) -> ExactCache | None:
    """The exact answer cache (one per app; None when caching is off). Its HMAC secret is derived
    from the payload codec's active key, which every process of a deployment shares."""
    if not settings.cache_enabled:
        return None
    cache: ExactCache | None = getattr(app.state, "exact_cache", None)
    if cache is None:
        ring = load_key_ring(settings)
        secret = hashlib.sha256(b"keel answer cache\0" + ring.keys[ring.active]).digest()
        cache = app.state.exact_cache = ExactCache(
            app.state.redis, secret, ttl_s=settings.cache_ttl_s, max_entries=settings.cache_max_entries
        )
        app.state.answer_config = answer_config(settings)
    return cache


def semantic_cache_of(app: Any, settings: Settings) -> SemanticCache | None:
    """The semantic layer's writer where the API shares the workers' indexes (infra.server, or a
    Qdrant server); otherwise `semantic_handover_of`."""
    indexes = getattr(app.state, "indexes", None)
    if indexes is None or not settings.cache_enabled:
        return None
    semantic: SemanticCache | None = getattr(app.state, "semantic_cache", None)
    if semantic is None:
        entries = Entries(
            app.state.redis, "semantic", ttl_s=settings.cache_ttl_s, max_entries=settings.cache_max_entries
        )
        semantic = app.state.semantic_cache = SemanticCache(indexes, entries, Guard.load(), ttl_s=settings.cache_ttl_s)
    return semantic


def semantic_handover_of(app: Any, settings: Settings) -> HandOver | None:
    """The semantic layer's writer where the API does not hold the indexes (an API process of its
    own beside an embedded Qdrant): the entry kept here, the point handed to the worker."""
    if getattr(app.state, "indexes", None) is not None or not settings.cache_enabled:
        return None
    handover: HandOver | None = getattr(app.state, "semantic_handover", None)
    if handover is None:
        entries = Entries(
            app.state.redis, "semantic", ttl_s=settings.cache_ttl_s, max_entries=settings.cache_max_entries
        )
        handover = app.state.semantic_handover = HandOver(app.state.redis, entries)
    return handover


def _exact_cache(request: Request, settings: Annotated[Settings, Depends(get_settings)]) -> ExactCache | None:
    return exact_cache_of(request.app, settings)


def question_redactor(app: Any, settings: Settings) -> Redactor | None:
    """The API's own redactor for questions (its own spaCy pipeline and lock, so a question never
    waits behind a document's redaction), made once; None when `redact_questions` is off."""
    if not settings.redact_questions:
        return None
    redactor: Redactor | None = getattr(app.state, "question_redactor", None)
    if redactor is None:
        redactor = app.state.question_redactor = Redactor(
            settings.pii_entities, settings.pii_score_threshold, settings.pii_use_ner
        )
    return redactor


def pii_vault_of(app: Any, settings: Settings) -> PiiVault | None:
    """The tenants' pseudonym vaults (`KEEL_PII_PSEUDONYMS`), made once per app; None when off."""
    if not settings.pii_pseudonyms:
        return None
    vault: PiiVault | None = getattr(app.state, "pii_vault", None)
    if vault is None:
        from keel.keyring import load_key_ring

        redis_client = app.state.redis
        vault = app.state.pii_vault = PiiVault(redis_client, TenantKeys(lambda: redis_client, load_key_ring(settings)))
    return vault


async def _question_redactor(request: Request, settings: Annotated[Settings, Depends(get_settings)]) -> Redactor | None:
    made: Redactor | None = getattr(request.app.state, "question_redactor", None)
    if made is not None or not settings.redact_questions:
        return made if settings.redact_questions else None
    return await asyncio.to_thread(question_redactor, request.app, settings)  # loads spaCy once


T = TypeVar("T")
EDGE_THREADS = 8


def edge_pool(app: Any) -> ThreadPoolExecutor:
    """Threads for the edge's short Redis calls (the key check, the limiter, settling), apart from
    asyncio's default pool, where question redaction and other CPU work queue: under load a
    refusal or a key check never waits behind them."""
    pool: ThreadPoolExecutor | None = getattr(app.state, "edge_pool", None)
    if pool is None:
        pool = app.state.edge_pool = ThreadPoolExecutor(EDGE_THREADS, thread_name_prefix="keel-edge")
    return pool


async def on_edge(request: Request, fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` on the edge's threads, with the request's context (its span)."""
    ctx = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(edge_pool(request.app), ctx.run, fn, *args)


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidKey("send the API key as `Authorization: Bearer keel_...`")
    return token.strip()


def _deny(r: redis.Redis, request: Request, exc: Exception, tenant: str | None, key_id: str = "") -> None:
    Audit(r).record(
        tenant,
        "denied",
        key_id=key_id,
        request_id=request_id(request),
        code=getattr(exc, "code", "denied"),
        method=request.method,
        path=request.url.path,
    )


def _resolve(r: redis.Redis, request: Request, groups_header: str) -> Principal:
    store = KeyStore(r)
    token: str | None = None
    try:
        token = _bearer(request)
        principal = store.resolve(token)
    except Unauthorized as exc:
        _deny(r, request, exc, store.owner_of(token) if token else None)
        raise
    if groups_header.strip():
        try:
            principal = principal.narrowed([g.strip() for g in groups_header.split(",") if g.strip()])
        except Forbidden as exc:
            _deny(r, request, exc, principal.tenant, principal.key_id)
            raise
    return principal


async def _principal(
    request: Request,
    x_keel_groups: Annotated[str, Header(description="narrow the key's access groups to these")] = "",
) -> Principal:
    started = time.perf_counter()
    principal = await on_edge(request, _resolve, request.app.state.redis, request, x_keel_groups)
    request.state.timings = {"auth": (time.perf_counter() - started) * 1000}  # the Server-Timing header
    request.state.principal = principal
    return principal


async def principal_of(request: Request) -> Principal:
    """The caller's principal from its Bearer key, for a route that also takes other credentials."""
    return await _principal(request)


def require(role: str, family: str | None = None) -> Callable[..., AsyncIterator[Principal]]:
    """A dependency: the caller's principal, refused with 403 unless its key has `role`, and with
    429 past its route `family`'s limits (None: the route admits itself, as the query routes do
    with their token reservations). The request holds its place in the family's concurrency until
    it is answered."""

    async def dependency(
        request: Request,
        principal: Annotated[Principal, Depends(_principal)],
        settings: Annotated[Settings, Depends(get_settings)],
    ) -> AsyncIterator[Principal]:
        await check_role(request, principal, role)
        if family is None:
            yield principal
            return
        async with limited(request, settings, principal, family):
            yield principal

    return dependency


async def check_role(request: Request, principal: Principal, role: str) -> None:
    """403 (and a denial in the audit log) unless the principal's key has `role`."""
    if role not in principal.roles:
        exc = RoleForbidden(f"the key has roles {sorted(principal.roles)}; this needs `{role}`")
        await on_edge(request, _deny, request.app.state.redis, request, exc, principal.tenant, principal.key_id)
        raise exc


@asynccontextmanager
async def limited(request: Request, settings: Settings, principal: Principal, family: str) -> AsyncIterator[None]:
    """Hold an admission of the route `family` for the principal while the block runs. An upload
    counts its kilobytes against the family's `tpm` (Content-Length, before the body is read)."""
    limiter = _limiter(request, settings)
    scopes = limiter.route_scopes(
        principal.key_id,
        principal.tenant,
        family,
        Limits.of(settings.key_route_limits.get(family, {})),
        Limits.of(settings.tenant_route_limits.get(family, {})),
    )
    size_kb = -(-int(request.headers.get("content-length") or 0) // 1024) if family == "ingest" else 0
    ticket = await on_edge(request, limiter.admit, request_id(request), scopes, size_kb)
    try:
        yield
    finally:
        await on_edge(request, limiter.settle, ticket, ticket.reserved_tokens, 0.0)


SettingsDep = Annotated[Settings, Depends(get_settings)]
TemporalDep = Annotated[Client, Depends(_temporal)]
RedisDep = Annotated[redis.Redis, Depends(_redis)]
BlobsDep = Annotated[BlobStore, Depends(_blobs)]
QuestionRedactorDep = Annotated[Redactor | None, Depends(_question_redactor)]
AdmissionDep = Annotated[Admission, Depends(_admission)]
LimiterDep = Annotated[Limiter, Depends(_limiter)]
ExactCacheDep = Annotated[ExactCache | None, Depends(_exact_cache)]
QueryCaller = Annotated[Principal, Depends(require(QUERY))]  # the query routes admit with their token reservation
FeedbackCaller = Annotated[Principal, Depends(require(QUERY, "feedback"))]
ConversationCaller = Annotated[Principal, Depends(require(QUERY, "conversations"))]
ReadCaller = Annotated[Principal, Depends(require(QUERY, "read"))]  # a document's text, as a query could see it
IngestCaller = Annotated[Principal, Depends(require(INGEST, "ingest"))]
StatusCaller = Annotated[Principal, Depends(require(INGEST, "status"))]  # a job's progress, polled
AdminCaller = Annotated[Principal, Depends(require(ADMIN, "admin"))]
