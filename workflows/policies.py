"""Every timeout and retry policy, in one place.

Bad input (the codes in keel.errors.NON_RETRYABLE_CODES) fails at once; everything else is
retried with capped exponential backoff. Every activity heartbeats (progress where it loops,
a keep-alive where it is one long call), so a worker that dies is noticed within
HEARTBEAT and its step retried elsewhere instead of waiting out the whole start-to-close timeout.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError

from keel.errors import NON_RETRYABLE_CODES

HEARTBEAT = timedelta(seconds=20)

# What a step that failed for good raises in the workflow: a regular activity's failure comes
# wrapped in ActivityError, a local activity's as its cause itself (the error, or its timeout).
STEP_FAILED = (ActivityError, ApplicationError, TimeoutError)

TRANSIENT = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=6,  # ~1 minute of trying, then the file is recorded as failed for a later retry
    non_retryable_error_types=sorted(NON_RETRYABLE_CODES),
)


@dataclass(frozen=True)
class StepPolicy:
    start_to_close: timedelta
    heartbeat: timedelta | None = HEARTBEAT
    retry: RetryPolicy = field(default_factory=lambda: TRANSIENT)


# Ingestion, per document. A small document stages its points (parse through upsert) in one
# local activity: the whole of it takes a fraction of a second, so a retry from the start costs
# less than recording seven steps would (each is an activation of the worker and a marker in the
# history; measured by `make bench-ingest`). A large document runs each step as a regular
# activity with heartbeats, so a long parse or embedding survives a worker loss mid-step and
# resumes from its last reported progress.
LOCAL_MAX_BYTES = 128 * 1024
BEGIN = StepPolicy(timedelta(seconds=10), heartbeat=None)  # local activity
STAGE = StepPolicy(timedelta(minutes=2), heartbeat=None)  # local activity, small documents only
PARSE = StepPolicy(timedelta(minutes=10))
CHUNK = StepPolicy(timedelta(minutes=2))
REDACT = StepPolicy(timedelta(minutes=10))
DEDUPE = StepPolicy(timedelta(minutes=2))
EMBED = StepPolicy(timedelta(minutes=30))
UPSERT = StepPolicy(timedelta(minutes=10))
PUBLISH = StepPolicy(timedelta(minutes=3))
DISCARD = StepPolicy(timedelta(minutes=1), heartbeat=None)  # local activity, after a failure
# Deletion: one activity each, heartbeated; an erasure walks every key and blob of a tenant.
DELETE_DOCUMENT = StepPolicy(timedelta(minutes=10))
ERASE_TENANT = StepPolicy(timedelta(hours=2))

# Embedding migration (BackfillIndexWorkflow). The backfill heartbeats after each page, so a
# worker lost mid-way is noticed within HEARTBEAT and the next attempt resumes from the last page;
# its attempts are not capped, since a migration that stops half-way only costs time. The
# reconciliation and the gate read every chunk or run every golden query: minutes, heartbeated.
PREPARE_MIGRATION = StepPolicy(timedelta(minutes=2), heartbeat=None)
BACKFILL = StepPolicy(
    timedelta(hours=24),
    retry=RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=60),
        maximum_attempts=0,
        non_retryable_error_types=sorted(NON_RETRYABLE_CODES),
    ),
)
RECONCILE = StepPolicy(timedelta(hours=1))
GATE = StepPolicy(timedelta(hours=1))
FLIP = StepPolicy(timedelta(minutes=3), heartbeat=None)
END_MIGRATION = StepPolicy(timedelta(hours=1))
# A tenant's snapshot, taken or restored in one heartbeated pass (pipelines.backup).
BACKUP = StepPolicy(timedelta(hours=6))
RESTORE = StepPolicy(timedelta(hours=6))

# Batch bookkeeping (local activities). Job state is what users read to find failures, so its
# writes retry until Redis is back rather than give up and lose outcomes.
UNTIL_IT_WORKS = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=0,
    non_retryable_error_types=sorted(NON_RETRYABLE_CODES),
)
MANIFEST_PAGE = StepPolicy(timedelta(seconds=30), heartbeat=None)
RECORD_OUTCOMES = StepPolicy(timedelta(seconds=30), heartbeat=None, retry=UNTIL_IT_WORKS)


In = TypeVar("In")
Out = TypeVar("Out")


async def step(activity: Callable[[Any, In], Out], arg: In, policy: StepPolicy) -> Out:
    """Run one activity method on the workflow's task queue under its policy."""
    return await workflow.execute_activity_method(
        activity,
        arg,
        start_to_close_timeout=policy.start_to_close,
        heartbeat_timeout=policy.heartbeat,
        retry_policy=policy.retry,
    )


async def local_step(activity: Callable[[Any, In], Out], arg: In, policy: StepPolicy) -> Out:
    """A local activity: runs in the workflow's worker, no task-queue round trip (short steps)."""
    return await workflow.execute_local_activity_method(
        activity, arg, start_to_close_timeout=policy.start_to_close, retry_policy=policy.retry
    )


class Runner(Protocol):
    def __call__(self, activity: Callable[[Any, In], Out], arg: In, policy: StepPolicy) -> Awaitable[Out]: ...


def is_small(size_bytes: int) -> bool:
    return size_bytes <= LOCAL_MAX_BYTES


def runner_for(size_bytes: int) -> Runner:
    """Local activities for a small document, regular heartbeated ones for a large one."""
    return local_step if is_small(size_bytes) else step


# Query: every step is a local activity (a task-queue round trip per step cost ~50 ms each on a
# 2-core box, four local activities ~50 ms in all) with a deadline from this one table. A request may tighten
# or loosen them through QueryInput.budgets_ms. A step that misses its deadline degrades the
# answer (rerank skipped, extractive answer, no validation) instead of failing the query.
QUERY_BUDGETS_MS: dict[str, float] = {
    "retrieve": 2000,
    "rerank": 800,
    "hop": 300,  # one filtered BM25 search over the named documents: ~10 ms; past this, the first hop stands
    "context": 1000,
    "generate": 30000,
    "validate": 4000,  # a model's answer is checked claim by claim, with the encoder: seconds on a busy CPU
}
QUERY_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=50),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(milliseconds=400),
    maximum_attempts=2,
    non_retryable_error_types=sorted(NON_RETRYABLE_CODES),
)
NO_RETRY = RetryPolicy(maximum_attempts=1)  # a skipped step is cheaper than a late one


def query_budgets(overrides: dict[str, float]) -> dict[str, float]:
    return {step: float(overrides.get(step, ms)) for step, ms in QUERY_BUDGETS_MS.items()}


async def query_step(
    activity: Callable[[Any, In], Out],
    arg: In,
    budget_ms: float,
    retry: RetryPolicy = QUERY_RETRY,
    summary: str | None = None,
) -> Out:
    """A query step as a local activity that must finish, retries included, within its budget
    (at least 1 ms: Temporal reads a zero timeout as none, and the step would never time out).
    `summary` names the steps it runs, beside its marker in the Temporal UI."""
    budget = timedelta(milliseconds=max(1.0, budget_ms))
    return await workflow.execute_local_activity_method(
        activity,
        arg,
        start_to_close_timeout=budget,
        schedule_to_close_timeout=budget,
        retry_policy=retry,
        summary=summary,
    )
