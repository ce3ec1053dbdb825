"""Pick the backend from settings: Edge unless `QDRANT_URL` names a server."""

from __future__ import annotations

from keel.config import Settings
from vectorstore.base import VectorStore


def open_store(settings: Settings) -> VectorStore:
    if settings.qdrant_url:
        from vectorstore.server import ServerStore

        return ServerStore(url=settings.qdrant_url, api_key=settings.qdrant_api_key)
    from vectorstore.edge import EdgeStore

    return EdgeStore(settings.qdrant_path)
