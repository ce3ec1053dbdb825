"""A workflow's failure, back at the edge as the Keel error its activity reported."""

from __future__ import annotations

from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from keel.errors import KeelError, from_code


def reported(exc: WorkflowFailureError, otherwise: KeelError) -> KeelError:
    """The error of the activity that failed the workflow, by its code; `otherwise` when no
    activity reported one (a timeout, a termination)."""
    cause: BaseException | None = exc.cause
    while cause is not None and not isinstance(cause, ApplicationError):
        cause = cause.__cause__
    if isinstance(cause, ApplicationError) and cause.type:
        return from_code(cause.type, cause.message)
    return otherwise
