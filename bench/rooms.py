"""Where a server's CPU goes, by room: sampled stacks (py-spy's raw format) sorted into the part of
the query path that ran (the edge, the HTTP server, a workflow task, each query step, the Temporal
SDK) and the kind of work at the leaf (Redis, Qdrant, the encoder, serialisation, ...).

A sample is one stack seen on a thread that was running (py-spy leaves idle threads out), so the
samples of a room over the sampling rate are the CPU seconds it spent. `bench.profile` turns them
into milliseconds per answered query.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

# "function (path/to/file.py:123)": the file of one frame (py-spy --full-filenames).
_FRAME = re.compile(r"\(([^():]*)(?::\d+)?\)\s*$")

# A query step's frames in pipelines/query.py and pipelines/answer.py: the step as an activity of
# its own, and its body as `find` and `answer` run it.
STEPS = {
    "retrieve": "retrieve",
    "_retrieve": "retrieve",
    "rerank": "rerank",
    "_rescore": "rerank",
    "hop": "hop",
    "_hop": "hop",
    "context": "context",
    "_pack": "context",
    "generate": "generate",
    "validate": "validate",
}

# The part of the path, from every frame of the stack: the first of these found anywhere in it
# wins (a query step, then the edge, ...), so the carriers (the event loop, a thread pool) count
# only what nothing more specific ran. (file part, room), in that order.
_PLACES: tuple[tuple[str, str], ...] = (
    ("/api/", "edge"),
    ("/app/", "edge"),
    ("/gateway/", "edge"),
    ("/workflows/", "workflow task"),
    ("temporalio/worker/_workflow", "workflow task"),
    ("temporalio/worker/_activity", "activity dispatch"),
    ("uvicorn/", "http server"),
    ("starlette/", "http server"),
    ("fastapi/", "http server"),
    ("h11/", "http server"),
    ("httptools/", "http server"),
    ("anyio/", "http server"),
    ("temporalio/", "temporal sdk"),
    ("asyncio/", "event loop"),
    ("concurrent/futures/", "thread pool"),
    ("threading.py", "thread pool"),
)
_RANK = {name: i for i, name in enumerate(dict.fromkeys(name for _, name in _PLACES))}

# The kind of work, from the innermost frame that matches.
_KINDS: tuple[tuple[str, str], ...] = (
    ("redis/", "redis"),
    ("stores/", "redis"),
    ("qdrant_edge", "qdrant"),
    ("vectorstore/", "qdrant"),
    ("onnxruntime/", "encoder"),
    ("torch/", "encoder"),
    ("sentence_transformers/", "encoder"),
    ("tokenizers/", "encoder"),
    ("transformers/", "encoder"),
    ("encoders/", "encoder"),
    ("presidio", "pii (ner)"),
    ("spacy/", "pii (ner)"),
    ("thinc/", "pii (ner)"),
    ("guardrails/", "guardrails"),
    ("temporalio/converter", "serialisation"),
    ("temporal/codec", "codec"),
    ("cryptography/", "codec"),
    ("google/protobuf", "serialisation"),
    ("json/", "serialisation"),
    ("pydantic", "serialisation"),
    ("dataclasses.py", "serialisation"),
    ("opentelemetry/", "tracing"),
    ("prometheus_client/", "metrics"),
    ("logging/", "logging"),
    ("httpx/", "http client"),
    ("httpcore/", "http client"),
)


# A thread blocked in C shows the Python frame that called it, and the profiler cannot always tell
# it was asleep: these leaves are waits (for work, a socket, a lock), not CPU. (file end, function)
_WAITS: tuple[tuple[str, str], ...] = (
    ("selectors.py", "select"),
    ("concurrent/futures/thread.py", "_worker"),
    ("threading.py", "wait"),
    ("queue.py", "get"),
    ("encoders/dense.py", "_run"),  # the question batcher, waiting for its next question
)
IDLE = ("idle", "waiting")


@dataclass(frozen=True)
class Sample:
    stack: tuple[str, ...]  # frames, outermost first
    count: int


def parse_raw(lines: Iterable[str]) -> list[Sample]:
    """py-spy's raw output: `frame;frame;...;frame COUNT` per line, the outermost frame first."""
    out = []
    for line in lines:
        line = line.rstrip("\n")
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        out.append(Sample(stack=tuple(stack.split(";")), count=int(count)))
    return out


def _file(frame: str) -> str:
    m = _FRAME.search(frame)
    return m.group(1) if m else frame


def _step(frame: str, path: str) -> str | None:
    """A query step's own frame: QuerySteps.retrieve in pipelines/query.py, AnswerSteps.generate..."""
    if not (path.endswith("pipelines/query.py") or path.endswith("pipelines/answer.py")):
        return None
    return STEPS.get(frame.split(" (", 1)[0].rsplit(".", 1)[-1])


def _waiting(frame: str) -> bool:
    path, name = _file(frame), frame.split(" (", 1)[0].rsplit(".", 1)[-1]
    return any(path.endswith(end) and name == fn for end, fn in _WAITS)


def room(stack: tuple[str, ...]) -> tuple[str, str]:
    """(part of the path, kind of work) for one sampled stack; `IDLE` for a thread that waits."""
    if _waiting(stack[-1]):
        return IDLE
    place, step = "other", None
    for frame in stack:
        path = _file(frame)
        if (found := _step(frame, path)) is not None:
            step = found  # the innermost: find runs _retrieve, _rescore, ...
        here = next((name for part, name in _PLACES if part in path), None)
        if here is not None and (place == "other" or _RANK[here] < _RANK[place]):
            place = here
    if step is not None:  # a query step, wherever it ran
        place = f"step {step}"
    for frame in reversed(stack):
        path = _file(frame)
        hit = next((name for part, name in _KINDS if part in path), None)
        if hit is not None:
            return place, hit
        if _library(path) == "own code":
            break  # the project's own code, whoever it calls below
    return place, _library(_file(stack[-1]))


def _library(path: str) -> str:
    """The package a file belongs to: a library's top-level name, "python" for the standard
    library, "own code" for the project's."""
    if "/site-packages/" in path:
        return path.split("/site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if "/lib/python" in path or path.startswith("<"):
        return "python"
    return "own code"


def tally(samples: Iterable[Sample]) -> Counter[tuple[str, str]]:
    rooms: Counter[tuple[str, str]] = Counter()
    for s in samples:
        rooms[room(s.stack)] += s.count
    return rooms
