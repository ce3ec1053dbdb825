"""Map Keel's exception tree (and driver errors) to Temporal's retry semantics, in one place."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

import redis
from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError

from keel.errors import KeelError, RedisUnavailable
from observability import metrics

F = TypeVar("F", bound=Callable[..., Any])


def to_application_error(exc: BaseException) -> BaseException:
    if isinstance(exc, KeelError):
        return ApplicationError(exc.message, type=exc.code, non_retryable=not exc.retryable)
    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        err = RedisUnavailable(f"Redis is unreachable: {exc}")
        return ApplicationError(err.message, type=err.code, non_retryable=False)
    return exc


def mapped(fn: F) -> F:
    """Decorate an activity so a Keel error reaches Temporal with its code and retryability.

    A step that ran past its timeout is cancelled: the SDK raises CancelledError in its thread at
    the next Python line (a C call it is in finishes first), so it stops instead of running on
    for a result nobody waits for. Those are counted (`keel_activity_cancelled`)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CancelledError:
            metrics.CANCELLED_STEPS.labels(activity.info().activity_type).inc()
            raise
        except ApplicationError:
            raise
        except Exception as exc:
            mapped_exc = to_application_error(exc)
            if mapped_exc is exc:
                raise
            raise mapped_exc from exc

    return cast(F, wrapper)
