"""Heartbeats for long synchronous steps.

A step that is one long library call (partitioning a 500-page PDF) cannot heartbeat between
items, so a helper thread, running in the activity's context, heartbeats on a timer; a worker
that dies stops heartbeating and Temporal retries the step elsewhere within `heartbeat_timeout`.
Steps that loop over items heartbeat their progress instead, so a retry resumes where it stopped.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from temporalio import activity


@contextmanager
def keep_alive(every_seconds: float = 5.0, details: Callable[[], tuple[Any, ...]] | None = None) -> Iterator[None]:
    """Heartbeat on a timer while the block runs. `details` gives the progress to send each time:
    a heartbeat replaces the last one's details, so a step that resumes from them must keep
    sending them (a bare heartbeat would make a retry start over)."""
    stop = threading.Event()
    if activity.info().is_local:  # local activities have no heartbeat; the workflow task is kept alive
        yield
        return

    def beat() -> None:
        while not stop.wait(every_seconds):
            activity.heartbeat(*(details() if details else ()))

    thread = threading.Thread(target=contextvars.copy_context().run, args=(beat,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=1)


def progress(done: int) -> None:
    """Report how many items are finished, so a retry of this activity can resume after them."""
    if not activity.info().is_local:
        activity.heartbeat(done)


def resume_from(default: int = 0) -> int:
    """The progress the last attempt reported, so this attempt can skip finished work."""
    details: tuple[Any, ...] = tuple(activity.info().heartbeat_details)
    if details and isinstance(details[0], int):
        return details[0]
    return default
