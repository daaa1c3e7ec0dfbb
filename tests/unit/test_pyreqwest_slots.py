"""The pyreqwest backend's in-flight cap (``_Slots``): free slots are taken without awaiting, a
wait is first come first served and bounded, and no slot is ever lost or doubled."""

from __future__ import annotations

import asyncio

import pytest

from egress.http._pyreqwest import _Slots


def test_free_slots_are_taken_at_once_up_to_the_size() -> None:
    slots = _Slots(2)
    assert slots.try_take() and slots.try_take()
    assert not slots.try_take()
    slots.give()
    assert slots.try_take()


async def test_a_returned_slot_goes_to_the_longest_waiter() -> None:
    slots = _Slots(1)
    assert slots.try_take()
    order: list[str] = []

    async def wait(name: str) -> None:
        await slots.take(5)
        order.append(name)

    first = asyncio.create_task(wait("first"))
    await asyncio.sleep(0)
    second = asyncio.create_task(wait("second"))
    await asyncio.sleep(0)
    slots.give()
    await first
    assert order == ["first"] and not second.done()
    assert not slots.try_take()  # the slot changed hands: still none free
    slots.give()
    await second
    assert order == ["first", "second"]
    slots.give()
    assert slots.try_take() and not slots.try_take()


async def test_a_wait_ends_at_its_limit_and_leaves_nothing_behind() -> None:
    slots = _Slots(1)
    assert slots.try_take()
    with pytest.raises(TimeoutError):
        await slots.take(0.05)
    slots.give()  # no one waits any more: the slot is free again
    assert slots.try_take()


async def test_a_slot_handed_to_a_waiter_cancelled_at_that_moment_is_passed_on() -> None:
    slots = _Slots(1)
    assert slots.try_take()
    doomed = asyncio.create_task(slots.take(5))
    await asyncio.sleep(0)
    slots.give()  # the slot is handed to the waiter...
    doomed.cancel()  # ...which is cancelled before it runs again
    with pytest.raises(asyncio.CancelledError):
        await doomed
    assert slots.try_take(), "the handed slot was lost"
    assert not slots.try_take(), "the handed slot was doubled"
