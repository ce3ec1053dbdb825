"""The query's steps called one after another, with no workflow: the use case's own home."""

from __future__ import annotations

import uuid

import redis

from contracts.query import ContextInput, GenerateInput, QueryInput, RerankInput, RetrieveInput, ValidateInput
from infra.worker import build_query_steps
from keel.config import Settings
from pipelines.deps import Deps
from pipelines.ingest import IngestSteps, ingest_plain, local_document
from tests.conftest import SAMPLES


def test_the_steps_answer_a_question_with_a_citation(
    settings: Settings, redis_client: redis.Redis, deps: Deps, tenant: str
) -> None:
    ingest = IngestSteps(deps)
    for path in (SAMPLES / "faq.txt", SAMPLES / "keel-overview.md"):
        data = path.read_bytes()
        assert ingest_plain(ingest, local_document(tenant, path, data), data) > 0
    steps = build_query_steps(settings, deps)
    question = "How do I retry failed files?"
    # As the workflow gets it (the edge's checks are app.query's, tested there).
    inp = QueryInput(request_id=uuid.uuid4().hex, tenant=tenant, groups=[], question=question)

    found = steps.retrieve(RetrieveInput(query=inp))
    assert found.count > 0 and found.generation > 0 and found.embedding_version
    ranked = steps.rerank(
        RerankInput(question=question, candidates_key=found.candidates_key, ranking=found.ranking, deadline_ms=5000)
    )
    context = steps.context(
        ContextInput(
            tenant=tenant,
            question=question,
            candidates_key=found.candidates_key,
            ranking=ranked.ranking,
            token_budget=0,
            request_id=inp.request_id,
            embedding_version=found.embedding_version,
        )
    )
    assert context.passages and any("faq" in p.source for p in context.passages)
    generated = steps.generate(
        GenerateInput(
            request_id=inp.request_id,
            tenant=tenant,
            question=question,
            passages=context.passages,
            confidence=context.confidence,
            deadline_ms=5000,
            embedding_version=found.embedding_version,
        )
    )
    assert "keel ingest" in generated.text.lower() and generated.provider == "extractive"
    validated = steps.validate(
        ValidateInput(
            question=question,
            text=generated.text,
            passages=context.passages,
            prompt_id=generated.prompt_id,
            tenant=tenant,
            provider=generated.provider,
            embedding_version=found.embedding_version,
        )
    )
    assert validated.citations and validated.citations[0].source.endswith("faq.txt")


def test_a_tenant_with_nothing_published_retrieves_nothing(
    settings: Settings, redis_client: redis.Redis, deps: Deps, tenant: str
) -> None:
    steps = build_query_steps(settings, deps)
    # build_query refuses an unknown tenant; retrieve on its own must still answer honestly.
    q = QueryInput(request_id=uuid.uuid4().hex, tenant=tenant, groups=[], question="anything at all")
    found = steps.retrieve(RetrieveInput(query=q))
    assert found.count == 0 and found.generation == 0 and found.cached_answer is None
