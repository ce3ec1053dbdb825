"""The worker: hosts the workflows and activities, owns the embedded Qdrant.

`python -m infra.worker` runs it alone; `python -m infra.server` (what `make run` starts) runs it
with the HTTP API in the same process. Models load once, at start. Ingestion runs on its own task
queue so a big batch never eats the interactive query path's capacity.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

import redis
from temporalio.client import Client
from temporalio.worker import Worker

from activities.batch import BatchActivities
from activities.ingest import IngestActivities
from activities.query import QueryActivities
from generation.breaker import Breaker, BreakerConfig
from generation.chain import ProviderChain, RetryConfig
from generation.extractive import ExtractiveAnswerer
from generation.openai_compat import OpenAICompatProvider, ProviderConfig
from generation.providers import Provider
from ingestion.embed import Embedder
from ingestion.pipeline import IngestDeps
from ingestion.redact import Redactor
from ingestion.sparse import SparseEncoder
from keel import offline  # noqa: F401 - sets the offline environment before any model import
from keel.blobstore import BlobStore
from keel.config import Settings, get_settings
from keel.jobs import JobStore
from keel.temporal_client import connect
from keel.tracing import setup_tracing
from retrieval.rerank import build_reranker
from vectorstore.factory import open_store
from workflows.ingest_batch import IngestBatchWorkflow
from workflows.ingest_document import IngestDocumentWorkflow
from workflows.query import QueryWorkflow

log = logging.getLogger("keel.worker")


def build_ingest_deps(settings: Settings) -> IngestDeps:
    import transformers

    transformers.logging.set_verbosity_error()
    return IngestDeps(
        settings=settings,
        blobs=BlobStore(settings.blob_dir),
        redis=redis.Redis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=5),
        store=open_store(settings),
        embedder=Embedder(
            settings.embedding_model_path,
            settings.embedding_model_id,
            settings.torch_threads,
            settings.embed_batch_size,
        ),
        redactor=Redactor(settings.pii_entities, settings.pii_score_threshold, settings.pii_use_ner),
        sparse=SparseEncoder(avg_len=settings.bm25_avg_len),
    )


def build_query_activities(settings: Settings, deps: IngestDeps) -> QueryActivities:
    providers: dict[str, Provider] = {}
    for raw in settings.providers:
        provider = OpenAICompatProvider(ProviderConfig(**raw))
        providers[provider.name] = provider
    chain = ProviderChain(
        providers,
        ExtractiveAnswerer(),
        Breaker(deps.redis, BreakerConfig(settings.breaker_failures, settings.breaker_reset_seconds)),
        RetryConfig(max_attempts=settings.provider_max_attempts),
    )
    reranker = build_reranker(settings.rerank_model_path, settings.fusion_dense_weight)
    return QueryActivities(deps, reranker, chain, settings.routes)


def build_workers(
    client: Client,
    settings: Settings,
    deps: IngestDeps,
    executor: ThreadPoolExecutor,
    query_executor: ThreadPoolExecutor,
) -> list[Worker]:
    ingest = IngestActivities(deps)
    batch = BatchActivities(deps.blobs, JobStore(deps.redis))
    query = build_query_activities(settings, deps)
    query.warm_up()  # at start, so the first query does not pay for it
    return [
        # Queries on their own task queue and thread pool, so a big ingest never queues them.
        Worker(
            client,
            task_queue=settings.query_task_queue,
            workflows=[QueryWorkflow],
            activities=query.all(),
            activity_executor=query_executor,
            max_concurrent_local_activities=settings.max_concurrent_query_activities,
            max_concurrent_activities=settings.max_concurrent_query_activities,
        ),
        Worker(
            client,
            task_queue=settings.ingest_task_queue,
            workflows=[IngestBatchWorkflow, IngestDocumentWorkflow],
            activities=[*ingest.all(), *batch.all()],
            activity_executor=executor,
            max_concurrent_activities=settings.max_concurrent_activities,
            max_concurrent_local_activities=settings.max_concurrent_local_activities,
        ),
    ]


@asynccontextmanager
async def hosted(settings: Settings, service: str) -> AsyncIterator[Client]:
    """Tracing, the models, the vector store and both Temporal workers, up for the block.

    Yields the client the workers poll with: a workflow started through it can start eagerly
    on them (see infra.server).
    """
    setup_tracing(service, settings.data_dir)
    deps = build_ingest_deps(settings)
    try:
        client = await connect(settings)
        with (
            ThreadPoolExecutor(max_workers=settings.max_concurrent_activities + 4) as executor,
            ThreadPoolExecutor(max_workers=settings.max_concurrent_query_activities) as query_executor,
        ):
            async with contextlib_async_group(build_workers(client, settings, deps, executor, query_executor)):
                log.info("workers ready on %s and %s", settings.query_task_queue, settings.ingest_task_queue)
                yield client
    finally:
        deps.store.close()


async def run_worker(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with hosted(settings, "keel-worker"):
        print("worker ready", flush=True)
        await stop.wait()


class contextlib_async_group:
    """Run several Temporal workers together and shut them all down on exit."""

    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers

    async def __aenter__(self) -> None:
        for w in self.workers:
            await w.__aenter__()

    async def __aexit__(self, *exc: object) -> None:
        for w in reversed(self.workers):
            await w.__aexit__(None, None, None)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(run_worker(get_settings()))


if __name__ == "__main__":
    main()
