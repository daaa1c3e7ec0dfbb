"""The in-flight cap of the aiohttp and pyreqwest backends (``Slots``): free slots are taken
without awaiting, a wait is first come first served and bounded, and no slot is ever lost or
doubled."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from egress.http._slots import Slots


def test_free_slots_are_taken_at_once_up_to_the_size() -> None:
    slots = Slots(2)
    assert slots.try_take() and slots.try_take()
    assert not slots.try_take()
    slots.give()
    assert slots.try_take()


async def test_a_returned_slot_goes_to_the_longest_waiter() -> None:
    slots = Slots(1)
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
    slots = Slots(1)
    assert slots.try_take()
    with pytest.raises(TimeoutError):
        await slots.take(0.05)
    assert repr(slots) == "Slots(free=0, waiting=0)"  # the ended wait left no waiter behind
    slots.give()  # no one waits any more: the slot is free again
    assert slots.try_take()


async def test_waits_that_end_unserved_do_not_pile_up() -> None:
    slots = Slots(1)
    assert slots.try_take()
    for _ in range(50):
        with pytest.raises(TimeoutError):
            await slots.take(0)
    cancelled = [asyncio.create_task(slots.take(5)) for _ in range(50)]
    await asyncio.sleep(0)
    for task in cancelled:
        task.cancel()
    await asyncio.gather(*cancelled, return_exceptions=True)
    assert repr(slots) == "Slots(free=0, waiting=0)"


async def test_a_slot_handed_to_a_waiter_cancelled_at_that_moment_is_passed_on() -> None:
    slots = Slots(1)
    assert slots.try_take()
    doomed = asyncio.create_task(slots.take(5))
    await asyncio.sleep(0)
    slots.give()  # the slot is handed to the waiter...
    doomed.cancel()  # ...which is cancelled before it runs again
    with pytest.raises(asyncio.CancelledError):
        await doomed
    assert slots.try_take(), "the handed slot was lost"
    assert not slots.try_take(), "the handed slot was doubled"


_STEP = st.one_of(
    st.tuples(st.just("take"), st.sampled_from([0.0, 0.001, 5.0])),
    st.tuples(st.just("give"), st.just(0.0)),
    st.tuples(st.just("cancel"), st.integers(0, 7).map(float)),
    st.tuples(st.just("run"), st.just(0.0)),
)


@settings(max_examples=150, deadline=None)
@given(size=st.integers(1, 3), steps=st.lists(_STEP, max_size=30))
def test_no_schedule_of_takes_gives_cancels_and_timeouts_loses_or_doubles_a_slot(
        size: int, steps: list[tuple[str, float]]) -> None:
    async def scenario() -> None:
        slots = Slots(size)
        held = 0  # slots taken and not yet given back
        waiting: list[asyncio.Task[None]] = []
        settled: set[asyncio.Task[None]] = set()  # waits whose outcome is already counted

        def settle() -> None:
            nonlocal held
            for task in waiting:
                if task.done() and task not in settled:
                    settled.add(task)
                    if not task.cancelled() and task.exception() is None:
                        held += 1

        for op, arg in steps:
            if op == "take":
                if slots.try_take():
                    held += 1
                else:
                    waiting.append(asyncio.create_task(slots.take(arg)))
            elif op == "give" and held > 0:
                held -= 1
                slots.give()
            elif op == "cancel" and waiting:
                waiting[int(arg) % len(waiting)].cancel()
            else:
                await asyncio.sleep(0.002)  # let waits end, by a slot or by their time
            await asyncio.sleep(0)
            settle()
            assert held <= size
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)
        settle()
        for _ in range(held):
            slots.give()
        assert sum(slots.try_take() for _ in range(size + 1)) == size

    asyncio.run(scenario())


async def test_a_waiter_cancelled_and_skipped_by_give_before_it_runs_again() -> None:
    # The caller's cancellation cancels the waiter; give() runs before the task does, finds it
    # cancelled and frees the slot instead: the task must end cancelled, the slot stay free.
    slots = Slots(1)
    assert slots.try_take()
    waiting = asyncio.create_task(slots.take(5))
    await asyncio.sleep(0)
    waiting.cancel()  # cancels the waiter future at once; the task runs later
    slots.give()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert repr(slots) == "Slots(free=1, waiting=0)"
