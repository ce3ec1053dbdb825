"""The query's steps called one after another, with no workflow: the use case's own home."""

from __future__ import annotations

import uuid
from pathlib import Path

import redis

from contracts.query import (
    ContextInput,
    GenerateInput,
    HopInput,
    QueryInput,
    RerankInput,
    RetrieveInput,
    ValidateInput,
)
from infra.worker import build_query_steps
from keel import ids
from keel.config import Settings
from keel.tenancy import EVERYONE
from pipelines.deps import Deps
from pipelines.ingest import IngestSteps, ingest_plain, local_document
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
    """A question's first passage names the document that answers it; distractors share its words."""
    docs = {
        "film": "# Kiss and Tell\n\nKiss and Tell is a 1945 American comedy film starring Shirley Temple as "
        "Corliss Archer, a teenager whose secret causes trouble for two families.\n",
        "actress": "# Shirley Temple\n\nShirley Temple Black was an American actress who later served as "
        "Chief of Protocol of the United States and as ambassador to Ghana.\n",
        "hidden": "# Meet Corliss Archer\n\nMeet Corliss Archer is a radio series; its Shirley Temple episode "
        "aired in 1945, and the film Kiss and Tell followed.\n",
        **{
            f"other{i}": f"# Government positions {i}\n\nA government position such as a chief of staff or a "
            f"secretary is held by the person the president names; list {i} of the woman and man appointed.\n"
            for i in range(6)
        },
    }
    paths = {}
    for name, text in docs.items():
        paths[name] = folder / f"{name}.md"
        paths[name].write_text(text)
    return paths


def test_the_second_hop_adds_the_document_the_top_passage_names(
    settings: Settings, redis_client: redis.Redis, deps: Deps, tenant: str, tmp_path: Path
) -> None:
    ingest = IngestSteps(deps)
    paths = _bridge_corpus(tmp_path)
    doc_ids = {}
    for name, path in paths.items():
        data = path.read_bytes()
        groups = ("radio",) if name == "hidden" else (EVERYONE,)  # a document this caller may not read
        ingest_plain(ingest, local_document(tenant, path, data, groups=groups), data)
        doc_ids[name] = ids.document_id(tenant, str(path))
    steps = build_query_steps(settings, deps)
    question = "What government position was held by the woman who portrayed Corliss Archer in Kiss and Tell?"
    inp = QueryInput(request_id=uuid.uuid4().hex, tenant=tenant, groups=[], question=question)
    found = steps.retrieve(RetrieveInput(query=inp))
    ranked = steps.rerank(
        RerankInput(question=question, candidates_key=found.candidates_key, ranking=found.ranking, deadline_ms=5000)
    )
    first = [s.doc_id for s in query_state.ranking(redis_client, found.candidates_key, ranked.ranking)]
    assert first[0] == doc_ids["film"] and first.index(doc_ids["actress"]) > 1  # the question never describes her
    hopped = steps.hop(
        HopInput(
            query=inp,
            candidates_key=found.candidates_key,
            ranking=ranked.ranking,
            generation=found.generation,
            deadline_ms=5000,
        )
    )
    assert hopped.ranking == "hop" and hopped.hop.linked >= 1 and hopped.hop.names > 0
    after = [s.doc_id for s in query_state.ranking(redis_client, found.candidates_key, hopped.ranking)]
    assert after.index(doc_ids["actress"]) < first.index(doc_ids["actress"])
    assert after.index(doc_ids["actress"]) <= 2
    assert set(after[:2]) == {doc_ids["film"], doc_ids["actress"]}  # both passages the answer needs
    assert doc_ids["hidden"] not in after  # another group's: neither hop finds it


def test_the_second_hop_respects_the_callers_groups(
    settings: Settings, redis_client: redis.Redis, deps: Deps, tenant: str, tmp_path: Path
) -> None:
    ingest = IngestSteps(deps)
    paths = _bridge_corpus(tmp_path)
    for name, path in paths.items():
        data = path.read_bytes()
        groups = ("board",) if name == "actress" else (EVERYONE,)
        ingest_plain(ingest, local_document(tenant, path, data, groups=groups), data)
    steps = build_query_steps(settings, deps)
    question = "Which office did the star of Kiss and Tell hold?"
    inp = QueryInput(request_id=uuid.uuid4().hex, tenant=tenant, groups=[], question=question)
    found = steps.retrieve(RetrieveInput(query=inp))
    hopped = steps.hop(
        HopInput(
            query=inp,
            candidates_key=found.candidates_key,
            ranking=found.ranking,
            generation=found.generation,
            deadline_ms=5000,
        )
    )
    after = query_state.ranking(redis_client, found.candidates_key, hopped.ranking)
    actress = ids.document_id(tenant, str(paths["actress"]))
    assert hopped.hop.names > 0 and actress not in {s.doc_id for s in after}
