"""The CPU profile's rooms: a sampled stack lands in the part of the path that ran it and the kind
of work at its leaf."""

from bench.rooms import IDLE, parse_raw, room, tally

SITE = "/venv/lib/python3.11/site-packages"
LIB = "/usr/lib/python3.11"


def frames(*parts: str) -> tuple[str, ...]:
    return tuple(f"fn{i} ({p}:{10 + i})" for i, p in enumerate(parts))


def test_a_query_step_names_its_room_under_the_workflow_that_ran_it() -> None:
    stack = (
        f"_run (/{LIB}/threading.py:1)",
        f"run ({SITE}/temporalio/worker/_activity.py:5)",
        "retrieve (/repo/activities/query.py:44)",
        "QuerySteps.retrieve (/repo/pipelines/query.py:150)",
        "HybridRetriever.retrieve (/repo/retrieval/retriever.py:80)",
        "EdgeStore._nearest (/repo/vectorstore/edge.py:130)",
    )
    assert room(stack) == ("step retrieve", "qdrant")


def test_the_encoder_under_a_step_counts_as_the_encoder() -> None:
    stack = (
        "QuerySteps.retrieve (/repo/pipelines/query.py:150)",
        "Int8Encoder.embed_query (/repo/encoders/int8.py:40)",
        f"dot ({SITE}/numpy/core/numeric.py:3)",
    )
    assert room(stack) == ("step retrieve", "encoder")


def test_the_edge_and_its_redis_calls() -> None:
    stack = (
        f"run ({LIB}/asyncio/events.py:80)",
        "query (/repo/api/routers/query.py:150)",
        "Limiter.admit (/repo/gateway/limits.py:60)",
        f"execute_command ({SITE}/redis/client.py:500)",
    )
    assert room(stack) == ("edge", "redis")


def test_a_workflow_activation_and_the_payload_converter() -> None:
    stack = (
        f"_run ({LIB}/threading.py:1)",
        f"activate ({SITE}/temporalio/worker/_workflow_instance.py:300)",
        f"value_to_type ({SITE}/temporalio/converter.py:1200)",
    )
    assert room(stack) == ("workflow task", "serialisation")


def test_the_projects_own_leaf_is_own_code_even_under_a_matching_caller() -> None:
    stack = (
        "QuerySteps.context (/repo/pipelines/query.py:290)",
        "pack (/repo/retrieval/context.py:50)",
    )
    assert room(stack) == ("step context", "own code")


def test_raw_lines_parse_and_tally_by_room() -> None:
    lines = [
        ";".join(frames(f"{LIB}/asyncio/base_events.py", f"{SITE}/uvicorn/protocols/http.py")) + " 7",
        ";".join(frames(f"{LIB}/asyncio/base_events.py", f"{SITE}/uvicorn/protocols/http.py")) + " 3",
        "garbage without a count",
        "",
    ]
    samples = parse_raw(lines)
    assert [s.count for s in samples] == [7, 3]
    assert tally(samples) == {("http server", "uvicorn"): 10}


def test_a_thread_waiting_for_work_is_idle_not_cpu() -> None:
    waits = [
        (f"_bootstrap ({LIB}/threading.py:1)", f"_worker ({LIB}/concurrent/futures/thread.py:81)"),
        (f"run_forever ({LIB}/asyncio/base_events.py:1)", f"EpollSelector.select ({LIB}/selectors.py:468)"),
    ]
    for stack in waits:
        assert room(stack) == IDLE
    busy = (f"_worker ({LIB}/concurrent/futures/thread.py:81)", "QuerySteps.rerank (/repo/pipelines/query.py:9)")
    assert room(busy) == ("step rerank", "own code")
