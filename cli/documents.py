"""`keel admin delete` and `keel erase-tenant`: removal for good, as the API key's tenant, through
Temporal directly (`keel delete` asks the HTTP API; this one also names a document by its source).

Both run a durable workflow and print what it removed; running either again is harmless and
says there was nothing left.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import redis
import typer

from app.delete import delete_document, erase_tenant
from cli.common import connect_redis, console, fail, principal
from contracts.delete import DocumentRemoved, TenantErased
from gateway.keys import ADMIN, INGEST, Principal
from keel import ids
from keel.config import Settings, get_settings
from keel.errors import BadInput, KeelError
from temporal.client import connect


def delete(
    doc_id: Annotated[str, typer.Argument(help="the document id (a citation's or a job file's doc_id)")] = "",
    source: Annotated[str, typer.Option(help="name the document by its source instead")] = "",
) -> None:
    """Delete one document for good: its points, record, dedupe entries and blobs."""
    settings = get_settings()
    try:
        r = connect_redis(settings)
        who = principal(settings, r, INGEST, None)
        if bool(doc_id) == bool(source):
            raise BadInput("name the document by its id or by --source, one of the two")
        target = doc_id or ids.document_id(who.tenant, source)
        removed = asyncio.run(_delete(settings, r, who, target))
    except KeelError as exc:
        fail(exc)
    if not removed.found:
        console.print(f"document {target}: nothing to delete (never ingested, or deleted already)", highlight=False)
        return
    console.print(
        f"deleted {target}: {removed.points} points, {removed.versions} versions, "
        f"{removed.dedupe_entries} dedupe entries, {removed.blobs} blobs; "
        f"{removed.rehomed} chunks of other documents stored again",
        highlight=False,
    )


async def _delete(settings: Settings, r: redis.Redis, who: Principal, doc_id: str) -> DocumentRemoved:
    return await delete_document(await connect(settings), settings, r, who, doc_id)


def erase(
    confirm: Annotated[str, typer.Option(help="the tenant's name, typed out: an erasure cannot be undone")],
) -> None:
    """Erase the key's whole tenant: every document, point, blob and job (keys and audit log stay)."""
    settings = get_settings()
    try:
        r = connect_redis(settings)
        who = principal(settings, r, ADMIN, None)
        if confirm != who.tenant:
            raise BadInput(f"the key is for tenant {who.tenant!r}: pass --confirm {who.tenant}")
        erased = asyncio.run(_erase(settings, r, who))
    except KeelError as exc:
        fail(exc)
    console.print(
        f"erased tenant {erased.tenant}: {erased.documents} documents, {erased.points} points, "
        f"{erased.redis_keys} Redis keys, {erased.blobs} blobs, {erased.jobs} jobs",
        highlight=False,
    )


async def _erase(settings: Settings, r: redis.Redis, who: Principal) -> TenantErased:
    return await erase_tenant(await connect(settings), settings, r, who)
