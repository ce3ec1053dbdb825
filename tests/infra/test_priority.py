"""Ingestion's threads run at a lower CPU priority than the query path's."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

from infra.worker import background_priority


def _nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_ingest_threads_are_niced_and_others_are_not() -> None:
    mine = _nice()
    with ThreadPoolExecutor(max_workers=1, initializer=background_priority, initargs=(10,)) as ingest:
        assert ingest.submit(_nice).result() == max(10, mine)
    with ThreadPoolExecutor(max_workers=1) as query:
        assert query.submit(_nice).result() == mine  # the process (and the query pool) keep theirs
    assert _nice() == mine
