"""The worker: hosts the workflows and activities, owns the embedded Qdrant.

`python -m infra.worker` runs it alone; `python -m infra.server` (what `make run` starts) runs it
with the HTTP API in the same process. Models load once, at start. Ingestion runs on its own task
queue so a big batch never eats the interactive query path's capacity.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager

from temporalio.client import Client
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.worker import Worker, WorkerDeploymentConfig

from activities.backup import BackupActivities
from activities.batch import BatchActivities
from activities.conversation import ConversationActivities
from activities.delete import DeleteActivities
from activities.index import IndexActivities
from activities.ingest import IngestActivities
from activities.query import QueryActivities
from caches.admin import CacheMemory
from caches.handover import Keeper
from caches.semantic import semantic_cache
from contracts.query import ContextPassage
from generation.breaker import Breaker, BreakerConfig
from generation.chain import LinkPolicy, ProviderChain, RetryConfig
from generation.extractive import ExtractiveAnswerer
from generation.followup import FollowupWriter
from generation.openai_compat import OpenAICompatProvider, ProviderConfig
from generation.providers import Provider
from generation.verify import NO_VERIFIER, Verifier
from infra.llm import wired
from ingestion.offload import Offload
from keel import offline  # noqa: F401 - sets the offline environment before any model import
from keel.config import Settings, get_settings
from observability import metrics
from observability.tracing import setup_tracing
from pipelines.conversation import FollowupSteps
from pipelines.deps import Deps, build_deps
from pipelines.query import QuerySteps
from retrieval.rerank import Reranker, build_reranker
from stores.jobs import JobStore
from temporal.client import connect, metrics_runtime
from temporal.deployments import workflow_code_id
from workflows.backfill_index import BackfillIndexWorkflow
from workflows.backup import BackupTenantWorkflow, RestoreTenantWorkflow
from workflows.conversation import ConversationWorkflow
from workflows.delete import DeleteDocumentWorkflow, EraseTenantWorkflow
from workflows.ingest_batch import IngestBatchWorkflow
from workflows.ingest_document import IngestDocumentWorkflow
from workflows.ingest_group import IngestGroupWorkflow
from workflows.query import QueryWorkflow

log = logging.getLogger("keel.worker")


def serve_metrics(port: int) -> None:
    try:
        metrics.serve(port)
    except OSError as exc:  # another Keel process on this box has the port: run on without
        log.warning("metrics are off: cannot serve them on 127.0.0.1:%s (%s)", port, exc)


def watch_caches(deps: Deps) -> None:
    """Each tenant's cache memory on the metrics port (read from Redis at each scrape)."""
    with contextlib.suppress(ValueError):  # an earlier start in this process registered it
        metrics.REGISTRY.register(CacheMemory(deps.redis))


def build_followup_writer(settings: Settings, providers: dict[str, Provider]) -> FollowupWriter | None:
    """The model that rewrites follow-ups: the operator's choice, else the wired model's."""
    local = [str(p["name"]) for p in wired(settings).providers]  # the model `make llm` wired in, if any
    name = settings.rewriter or (local[0] if local else "")
    if not name or name == NO_VERIFIER:
        return None
    if name not in providers:
        raise ValueError(f"KEEL_REWRITER names {name!r}, which is not a provider: {sorted(providers)}")
    return FollowupWriter(providers[name])


def build_query_steps(settings: Settings, deps: Deps) -> QuerySteps:
    providers: dict[str, Provider] = {}
    links: dict[str, LinkPolicy] = {}
    local = wired(settings)  # a model `make llm` wired in
    for raw in [*settings.providers, *local.providers]:
        config = ProviderConfig(**{**raw, "stop": tuple(raw.get("stop", ()))})
        providers[config.name] = OpenAICompatProvider(config)
        links[config.name] = LinkPolicy(
            attempt_timeout_s=config.attempt_timeout_s,
            first_token_timeout_s=config.first_token_timeout_s,
            max_in_flight=config.max_in_flight,
        )
    chain = ProviderChain(
        providers,
        ExtractiveAnswerer(),
        Breaker(deps.redis, BreakerConfig(settings.breaker_failures, settings.breaker_reset_seconds)),
        RetryConfig(max_attempts=settings.provider_max_attempts),
        links=links,
    )
    # An operator's own chain for a route comes first; the local model joins it as a later link.
    routes = {
        name: [
            *settings.routes.get(name, []),
            *(p for p in local.routes.get(name, []) if p not in settings.routes.get(name, [])),
        ]
        for name in {*settings.routes, *local.routes}
    }
    verifier = None
    name = settings.verifier or local.verifier  # the operator's choice, else the wired model's
    if name and name != NO_VERIFIER:
        if name not in providers:
            raise ValueError(f"KEEL_VERIFIER names {name!r}, which is not a provider: {sorted(providers)}")
        verifier = Verifier(providers[name], settings.verify_budget_s)
    warm_local_models(settings, chain, [str(p["name"]) for p in local.providers])
    return QuerySteps(deps, build_reranker_for(settings), chain, routes, verifier)


WARM_PASSAGE = ContextPassage(
    ref=1,
    doc_id="warm-up",
    version="1",
    source="warm-up",
    title="Warm-up",
    section_path=["Warm-up"],
    chunk_indexes=[0],
    text="Keel answers questions from documents and cites its sources.",
    score=1.0,
)


def warm_local_models(settings: Settings, chain: ProviderChain, names: list[str]) -> None:
    """The local model `make llm` wired in answers one short question before the worker says it
    is ready: its weights load and its prompt (the fixed system message and example) is cached,
    so the first user does not wait for that past the first-token deadline. Hosted providers are
    not asked: they are warm, and a call costs money."""
    for name, ms in chain.warm(names, WARM_PASSAGE, settings.llm_answer_s * 10).items():
        print(f"model {name} warm ({ms / 1000:.1f} s)", flush=True)


def _say_when_ready(offload: Offload) -> None:
    """A line in the log once the parse and redaction processes have loaded (the ingest
    benchmark starts its clock there: their start-up is paid once, not per document)."""
    try:
        offload.wait_ready()
    except OSError as exc:  # a call will find the same and fail its file retryably
        log.warning("the ingest processes did not start: %s", exc)
        return
    print("ingest processes ready", flush=True)


def _load_new_tenant_encoder(deps: Deps, name: str) -> None:
    """The encoder new tenants start on, built (int8: from the packaged weights, once per data
    directory, seconds) and loaded while the worker starts, so a first ingest does not wait."""
    try:
        deps.indexes.index(name)
    except Exception as exc:  # the first ingest that needs it tries again, and fails visibly
        log.warning("the new-tenant encoder %r did not load at start: %s", name, exc)
        return
    print("new-tenant encoder ready", flush=True)


def build_reranker_for(settings: Settings) -> Reranker:
    return build_reranker(settings.rerank_model_path, settings.fusion_method, settings.fusion_dense_weight)


def background_priority(nice: int) -> None:
    """Run the calling thread at a lower CPU priority (Linux: a thread's niceness is its own)."""
    if nice <= 0:
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, max(nice, os.getpriority(os.PRIO_PROCESS, tid)))  # only ever lower
    except (AttributeError, OSError) as exc:  # not Linux, or not allowed: run at normal priority
        log.warning("ingest threads run at normal priority: %s", exc)


QUEUES = ("query", "ingest")


def build_workers(
    client: Client,
    settings: Settings,
    deps: Deps,
    executor: ThreadPoolExecutor,
    query_executor: ThreadPoolExecutor,
    queues: Sequence[str] = QUEUES,
) -> list[Worker]:
    """The workers for `queues`: at scale, query and ingest workers run as processes of their own
    (`python -m infra.worker --queues ingest`), each pool sized and placed for its work."""
    workers = []
    if "query" in queues:
        steps = build_query_steps(settings, deps)
        query = QueryActivities(steps)
        conversation = ConversationActivities(FollowupSteps(build_followup_writer(settings, steps.chain.providers)))
        query.warm_up()  # at start, so the first query does not pay for it
        # Queries on their own task queue and thread pool, so a big ingest never queues them.
        workers.append(
            Worker(
                client,
                task_queue=settings.query_task_queue,
                workflows=[QueryWorkflow],
                activities=query.all(),
                activity_executor=query_executor,
                max_concurrent_local_activities=settings.max_concurrent_query_activities,
                max_concurrent_activities=settings.max_concurrent_query_activities,
                deployment_config=deployment_config(settings, VersioningBehavior.PINNED),
            )
        )
        # Conversations live between turns for weeks: they move to each release at their next
        # turn (their changes are patched), on a queue of their own; only their rewrite runs there.
        workers.append(
            Worker(
                client,
                task_queue=settings.conversation_queue,
                workflows=[ConversationWorkflow],
                activities=conversation.all(),
                activity_executor=query_executor,
                max_concurrent_local_activities=settings.max_concurrent_query_activities,
                deployment_config=deployment_config(settings, VersioningBehavior.AUTO_UPGRADE),
            )
        )
    if "ingest" in queues:
        if deps.offload is not None:
            deps.offload.start()  # the parse/redaction processes load while the rest starts
            threading.Thread(target=_say_when_ready, args=(deps.offload,), daemon=True).start()
        threading.Thread(target=_load_new_tenant_encoder, args=(deps, settings.new_tenant_encoder), daemon=True).start()
        ingest = IngestActivities(deps)
        batch = BatchActivities(deps.blobs, JobStore(deps.redis))
        deletion = DeleteActivities(deps)
        lifecycle = IndexActivities(deps, build_reranker_for(settings))
        snapshots = BackupActivities(deps)
        workers.append(
            Worker(
                client,
                task_queue=settings.ingest_task_queue,
                workflows=[
                    IngestBatchWorkflow,
                    IngestDocumentWorkflow,
                    IngestGroupWorkflow,
                    DeleteDocumentWorkflow,
                    EraseTenantWorkflow,
                    BackfillIndexWorkflow,
                    BackupTenantWorkflow,
                    RestoreTenantWorkflow,
                ],
                activities=[*ingest.all(), *batch.all(), *deletion.all(), *lifecycle.all(), *snapshots.all()],
                activity_executor=executor,
                max_concurrent_activities=settings.max_concurrent_activities,
                max_concurrent_local_activities=settings.max_concurrent_local_activities,
                deployment_config=deployment_config(settings, VersioningBehavior.AUTO_UPGRADE),
            )
        )
    return workers


def deployment_config(settings: Settings, behavior: VersioningBehavior) -> WorkerDeploymentConfig | None:
    """This release's version of the workers' deployment (None: versioning off). Queries are
    short: pinned, a release's own workers finish the ones they started. Ingestion runs for hours:
    auto-upgrade, it moves to the current release at its next step, which its patches allow."""
    if not settings.worker_deployment:
        return None
    version = WorkerDeploymentVersion(
        deployment_name=settings.worker_deployment, build_id=settings.worker_build_id or workflow_code_id()
    )
    return WorkerDeploymentConfig(version=version, use_worker_versioning=True, default_versioning_behavior=behavior)


def start_keeper(settings: Settings, deps: Deps, queues: Sequence[str]) -> Keeper | None:
    """The thread that adds the semantic-cache points API processes hand over (caches.handover):
    in a query worker, which holds the indexes."""
    if "query" not in queues or not settings.cache_enabled:
        return None
    keeper = Keeper(deps.redis, semantic_cache(deps), deps.indexes)
    keeper.start()
    return keeper


@asynccontextmanager
async def hosted(
    settings: Settings, service: str, queues: Sequence[str] = QUEUES
) -> AsyncIterator[tuple[Client, Deps]]:
    """Tracing, the models, the vector store and both Temporal workers, up for the block.

    Yields the client the workers poll with (a workflow started through it can start eagerly on
    them, see infra.server) and the workers' dependencies (an API in the process shares them).
    """
    setup_tracing(service, settings.data_dir)
    serve_metrics(settings.metrics_port)
    deps = build_deps(settings)
    watch_caches(deps)
    try:
        client = await connect(settings, runtime=metrics_runtime(settings.temporal_metrics_port))
        with (
            ThreadPoolExecutor(
                max_workers=settings.max_concurrent_activities + 4,
                initializer=background_priority,  # ingestion yields the CPU to queries
                initargs=(settings.ingest_nice,),
            ) as executor,
            ThreadPoolExecutor(max_workers=settings.max_concurrent_query_activities) as query_executor,
        ):
            async with run_workers(build_workers(client, settings, deps, executor, query_executor, queues)):
                log.info("workers ready for %s", ", ".join(queues))
                keeper = start_keeper(settings, deps, queues)
                try:
                    yield client, deps
                finally:
                    if keeper is not None:
                        keeper.stop()
    finally:
        deps.close()


async def run_worker(settings: Settings, queues: Sequence[str] = QUEUES) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with hosted(settings, "keel-worker", queues):
        print("worker ready", flush=True)
        await stop.wait()


@asynccontextmanager
async def run_workers(workers: list[Worker]) -> AsyncIterator[None]:
    """Several Temporal workers together, shut down in reverse order on exit."""
    async with AsyncExitStack() as stack:
        for w in workers:
            await stack.enter_async_context(w)
        yield


def main() -> None:
    parser = argparse.ArgumentParser(description="Keel's Temporal workers (the embedded Qdrant with them).")
    parser.add_argument("--queues", default=",".join(QUEUES), help="which to serve: query, ingest or both")
    queues = [q.strip() for q in parser.parse_args().queues.split(",") if q.strip()]
    if not queues or set(queues) - set(QUEUES):
        parser.error(f"--queues takes {', '.join(QUEUES)} (comma-separated)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(run_worker(get_settings(), queues))


if __name__ == "__main__":
    main()
