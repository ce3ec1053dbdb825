"""Admission: a full process refuses at once; a queued request waits a bounded time for a slot."""

from __future__ import annotations

import asyncio

import pytest

from gateway.admission import Admission
from keel.errors import Overloaded


async def test_a_full_queue_is_refused_at_once_and_a_slot_passes_on() -> None:
    admission = Admission(limit=2, queue=1, wait_s=30)
    await admission.acquire()
    await admission.acquire()
    waiter = asyncio.create_task(admission.acquire())
    await asyncio.sleep(0)  # the third is queued
    with pytest.raises(Overloaded) as refused:
        await admission.acquire()  # the queue is full: no waiting at all (wait_s is 30)
    assert refused.value.http_status == 503 and refused.value.retry_after_s
    admission.release()
    await waiter  # the freed slot goes to the queued request
    assert admission.in_flight == 2 and admission.refused == 1


async def test_a_queued_request_gives_up_after_its_wait() -> None:
    admission = Admission(limit=1, queue=4, wait_s=0.05)
    async with admission.slot():
        with pytest.raises(Overloaded, match="within"):
            await admission.acquire()
    async with admission.slot():  # the slot was given back, and the refused one took none
        assert admission.in_flight == 1
    assert admission.in_flight == 0
