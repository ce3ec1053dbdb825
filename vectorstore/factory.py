"""Pick the backend from settings: Edge unless `QDRANT_URL` names a server."""

from __future__ import annotations

from keel.config import Settings
from vectorstore.base import VectorStore


def open_store(settings: Settings) -> VectorStore:
    if settings.qdrant_url:
        from vectorstore.server import Layout, ServerStore

        return ServerStore(
            url=settings.qdrant_url,
            api_key=settings.qdrant_api_key,
            timeout=settings.qdrant_timeout_s,
            layout=Layout(
                shards=settings.qdrant_shards,
                replication=settings.qdrant_replication,
                write_consistency=min(settings.qdrant_write_consistency, settings.qdrant_replication),
            ),
        )
    from vectorstore.edge import EdgeStore

    return EdgeStore(settings.qdrant_path)
