"""`python -m infra.api`: an API-only process, for deployments that run the API and the workers
apart (`python -m infra.worker --queues query|ingest`) and scale each on its own signal.

Its queries start on the Temporal server as any client's do (no eager start: that needs a worker
in the process). With a Qdrant server it opens the tenants' indexes too, so that it keeps the
answers it serves in the semantic cache (the question's vector comes from the query's state,
and the encoder loads on the first answer kept); with the embedded Qdrant it cannot (only the
worker's process may open those files): it keeps the entry and hands the point to the worker
(`caches.handover`).

    KEEL_API_PORT=8001 python -m infra.api
"""

from __future__ import annotations

import logging
import sys

import uvicorn

from api.main import create_app
from encoders.registry import Encoders
from index.active import Indexes
from ingestion.chunk import CHUNKER_VERSION
from keel import offline  # noqa: F401 - offline environment before any model import
from keel.config import Settings, get_settings
from stores import redis as redis_store
from vectorstore.factory import open_store


def shared_indexes(settings: Settings) -> Indexes | None:
    """The tenants' indexes on a Qdrant server; None with the embedded one."""
    if not settings.qdrant_url:
        return None
    encoders = Encoders(
        settings.torch_threads, settings.embed_batch_size, settings.data_dir / "models", settings.embed_pass_tokens
    )
    return Indexes(open_store(settings), redis_store.connect(settings), encoders, settings, CHUNKER_VERSION)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = get_settings()
    sys.setswitchinterval(max(0.0001, settings.gil_switch_interval_ms / 1000))
    app = create_app(None, shared_indexes(settings))
    uvicorn.run(
        app, host=settings.api_host, port=settings.api_port, log_level="info", access_log=settings.api_access_log
    )


if __name__ == "__main__":
    main()
