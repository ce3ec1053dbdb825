"""Admission: a full process refuses at once; a queued request waits a bounded time for a slot."""

from __future__ import annotations

import asyncio

import pytest

from gateway.admission import Admission
from keel.errors import Overloaded


async def test_a_full_queue_is_refused_at_once_and_a_slot_passes_on() -> None:
    admission = Admission(limit=2, queue=1, wait_s=30)
    first = await admission.acquire()
    await admission.acquire()
    waiter = asyncio.create_task(admission.acquire())
    await asyncio.sleep(0)  # the third is queued
    with pytest.raises(Overloaded) as refused:
        await admission.acquire()  # the queue is full: no waiting at all (wait_s is 30)
    assert refused.value.http_status == 503 and refused.value.retry_after_s
    admission.release(first)
    await waiter  # the freed slot goes to the queued request
    assert admission.in_flight == 2 and admission.refused == 1


async def test_a_queued_request_gives_up_after_its_wait() -> None:
    admission = Admission(limit=1, queue=4, wait_s=0.05)
    admission.hold_s = 0.001  # the pace says a slot is near; it does not come: the backstop ends the wait
    async with admission.slot():
        with pytest.raises(Overloaded, match="within"):
            await admission.acquire()
    async with admission.slot():  # the slot was given back, and the refused one took none
        assert admission.in_flight == 1
    assert admission.in_flight == 0


async def test_at_a_slow_pace_the_queue_is_refused_without_waiting() -> None:
    """Queries have been holding their slot ~1 s: a second one in line could not start within the
    0.5 s wait, so it is refused at once rather than after waiting out the budget."""
    admission = Admission(limit=1, queue=8, wait_s=0.5)
    for _ in range(20):  # the recent pace: 1 s a query
        taken = await admission.acquire()
        admission.release(taken - 1.0)
    assert 0.9 < admission.hold_s < 1.1
    async with admission.slot():
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(Overloaded, match="pace"):
            await admission.acquire()
        assert loop.time() - started < 0.1  # at once, not after wait_s
    assert admission.refused == 1 and admission.in_flight == 0


async def test_one_tenant_cannot_fill_the_line_in_front_of_another() -> None:
    admission = Admission(limit=4, queue=8, wait_s=30)
    held = [await admission.acquire("greedy") for _ in range(4)]  # alone, it may use every slot
    other = asyncio.create_task(admission.acquire("quiet"))
    await asyncio.sleep(0)  # the other tenant waits for a turn
    # Two tenants want the slots now: the greedy one holds 4, past its share of 2, and is refused
    # instead of queueing ahead of the next slot.
    with pytest.raises(Overloaded, match="share"):
        await admission.acquire("greedy")
    admission.release(held.pop(), "greedy")
    await other  # the freed slot goes to the tenant that was waiting
    assert admission.in_flight == 4
    with pytest.raises(Overloaded, match="share"):
        await admission.acquire("greedy")  # still 3 held against a share of 2
    for taken in held:
        admission.release(taken, "greedy")
    assert await admission.acquire("greedy")  # slots free: it runs again


async def test_a_burst_is_counted_at_the_door_before_any_of_it_takes_a_place_in_line() -> None:
    """Everyone let in counts until answered, on the way to a slot too: a burst of arrivals cannot
    all pass the door's check before the first of them has queued (and then be refused after its
    key check and body were paid for)."""
    admission = Admission(limit=2, queue=1, wait_s=10.0)
    entered = []
    for _ in range(3):  # none of them has asked for a slot yet
        door = admission.door()
        assert await door.__aenter__() is None
        entered.append(door)
    async with admission.door() as why:  # the fourth finds the house full
        assert why is not None and "2 queries are running and 1 waiting or on their way" in why
    assert admission.inside == 3
    await entered.pop().__aexit__(None, None, None)  # one answered: a place is free again
    async with admission.door() as why:
        assert why is None and admission.inside == 3
    assert admission.inside == 2
    # A request let in is not refused by its own count when it asks for a slot.
    async with admission.slot(), admission.slot():
        assert admission.in_flight == 2
