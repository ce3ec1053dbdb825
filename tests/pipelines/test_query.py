"""The query's steps called one after another, with no workflow: the use case's own home."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import redis

from contracts.query import (
    ContextInput,
    GenerateInput,
    HopInput,
    HopOutput,
    QueryInput,
    RerankInput,
    RetrieveInput,
    RetrieveOutput,
    ValidateInput,
)
from index.catalog import Catalog
from infra.worker import build_query_steps
from keel import ids
from keel.config import Settings
from keel.tenancy import EVERYONE
from pipelines import query as query_steps
from pipelines.deps import Deps
from pipelines.ingest import IngestSteps, ingest_plain, local_document
from pipelines.query import QuerySteps
from stores import query_state
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


def _bridge_corpus(folder: Path) -> dict[str, Path]:
    """A question's first passage names the document that answers it; distractors share its words.
    (Names of things, not people: with the default protection a person's name is a placeholder,
    and a placeholder never links.)"""
    docs = {
        "aircraft": "# Skylark 9\n\nThe Skylark 9 is a light aircraft built by Nordwind AS since 1998, "
        "with a range of 900 kilometres.\n",
        "maker": "# Nordwind AS\n\nNordwind AS is a company based in Tromsø, Norway, that also builds gliders.\n",
        "hidden": "# Skylark Owners Club\n\nThe Skylark Owners Club meets at Nordwind AS every "
        "spring to fly the Skylark 9 together.\n",
        **{
            f"other{i}": f"# Aircraft makers {i}\n\nAn aircraft maker of country {i} is headquartered in its "
            f"capital; list {i} names each maker, the country it is headquartered in and its light aircraft.\n"
            for i in range(6)
        },
    }
    paths = {}
    for name, text in docs.items():
        paths[name] = folder / f"{name}.md"
        paths[name].write_text(text)
    return paths


def _ingest_bridge(deps: Deps, tenant: str, folder: Path, hidden: str, group: str) -> dict[str, str]:
    """The bridge corpus ingested, the document `hidden` in `group` only; name -> doc id."""
    ingest = IngestSteps(deps)
    doc_ids = {}
    for name, path in _bridge_corpus(folder).items():
        data = path.read_bytes()
        groups = (group,) if name == hidden else (EVERYONE,)
        ingest_plain(ingest, local_document(tenant, path, data, groups=groups), data)
        doc_ids[name] = ids.document_id(tenant, str(path))
    return doc_ids


def _hop(steps: QuerySteps, inp: QueryInput, found: RetrieveOutput, ranking: str) -> HopOutput:
    return steps.hop(
        HopInput(
            query=inp,
            candidates_key=found.candidates_key,
            ranking=ranking,
            generation=found.generation,
            deadline_ms=5000,
        )
    )


def test_the_second_hop_adds_the_document_the_top_passage_names(
    settings: Settings, redis_client: redis.Redis, deps: Deps, tenant: str, tmp_path: Path
) -> None:
    doc_ids = _ingest_bridge(deps, tenant, tmp_path, hidden="hidden", group="radio")  # one this caller may not read
    steps = build_query_steps(settings, deps)
    question = "In which country is the maker of the Skylark 9 headquartered?"
    inp = QueryInput(request_id=uuid.uuid4().hex, tenant=tenant, groups=[], question=question)
    found = steps.retrieve(RetrieveInput(query=inp))
    ranked = steps.rerank(
        RerankInput(question=question, candidates_key=found.candidates_key, ranking=found.ranking, deadline_ms=5000)
    )
    first = [s.doc_id for s in query_state.ranking(redis_client, found.candidates_key, ranked.ranking)]
    assert first[0] == doc_ids["aircraft"] and first.index(doc_ids["maker"]) > 1  # never described by the question
    hopped = _hop(steps, inp, found, ranked.ranking)
    assert hopped.ranking == "hop" and hopped.hop.linked >= 1 and hopped.hop.names > 0
    after = [s.doc_id for s in query_state.ranking(redis_client, found.candidates_key, hopped.ranking)]
    assert after.index(doc_ids["maker"]) < first.index(doc_ids["maker"])
    assert set(after[:2]) == {doc_ids["aircraft"], doc_ids["maker"]}  # both passages the answer needs
    assert doc_ids["hidden"] not in after  # another group's: neither hop finds it


def test_the_second_hop_respects_the_callers_groups(
    settings: Settings, redis_client: redis.Redis, deps: Deps, tenant: str, tmp_path: Path
) -> None:
    doc_ids = _ingest_bridge(deps, tenant, tmp_path, hidden="maker", group="board")
    steps = build_query_steps(settings, deps)
    question = "Where is the company that builds the Skylark 9 based?"
    inp = QueryInput(request_id=uuid.uuid4().hex, tenant=tenant, groups=[], question=question)
    found = steps.retrieve(RetrieveInput(query=inp))
    hopped = _hop(steps, inp, found, found.ranking)
    after = query_state.ranking(redis_client, found.candidates_key, hopped.ranking)
    assert hopped.hop.names > 0 and doc_ids["maker"] not in {s.doc_id for s in after}


def test_the_start_up_warm_up_reads_a_published_tenants_index_as_a_query_would(
    settings: Settings, deps: Deps, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The index keeps payloads on disk: the first search that read them cost a user ~0.5 s.
    A worker's warm-up searches each of a few published tenants once, at start."""
    ingest = IngestSteps(deps)
    data = (SAMPLES / "faq.txt").read_bytes()
    assert ingest_plain(ingest, local_document(tenant, SAMPLES / "faq.txt", data), data) > 0
    Catalog(deps.redis).add_tenant(tenant)
    steps = build_query_steps(settings, deps)
    searched: list[tuple[str, int]] = []
    real = steps.retriever.retrieve

    def recording(index: Any, who: str, question: str, where: Any, *args: Any, **kwargs: Any) -> Any:
        found = real(index, who, question, where, *args, **kwargs)
        searched.append((who, len(found.scored)))
        return found

    monkeypatch.setattr(steps.retriever, "retrieve", recording)
    monkeypatch.setattr(query_steps, "WARM_TENANTS", 100_000)  # every tenant this suite's Redis knows
    steps.warm_up()
    assert any(who == tenant and hits > 0 for who, hits in searched), searched
