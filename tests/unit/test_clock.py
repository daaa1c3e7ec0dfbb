"""FakeClock: virtual time, manual and automatic advance, timers."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from egress import SystemClock
from egress.testing import FakeClock


async def test_auto_advance_wakes_sleepers_in_time_order() -> None:
    clock = FakeClock(start=0.0)
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.now()))

    await asyncio.gather(sleeper("late", 5.0), sleeper("early", 1.0), sleeper("mid", 3.0))
    assert woke == [("early", 1.0), ("mid", 3.0), ("late", 5.0)]


async def test_manual_advance() -> None:
    clock = FakeClock(start=0.0, auto_advance=False)
    done = asyncio.Event()

    async def sleeper() -> None:
        await clock.sleep(2.0)
        done.set()

    task = asyncio.create_task(sleeper())
    await clock.settle()
    clock.advance(1.9)
    await clock.settle()
    assert not done.is_set()
    clock.advance(0.1)
    await clock.settle()
    assert done.is_set()
    await task


def test_timers_fire_on_advance_and_cancelled_ones_do_not() -> None:
    clock = FakeClock(start=0.0, auto_advance=False)
    fired: list[str] = []
    clock.call_later(1.0, lambda: fired.append("a"))
    cancelled = clock.call_later(2.0, lambda: fired.append("b"))
    clock.call_later(3.0, lambda: fired.append("c"))
    cancelled.cancel()
    clock.advance(2.5)
    assert fired == ["a"]
    clock.advance(1.0)
    assert fired == ["a", "c"]


def test_sleep_sync_moves_time_and_records() -> None:
    clock = FakeClock(start=10.0)
    clock.sleep_sync(1.5)
    assert clock.now() == 11.5
    assert clock.sleeps == [1.5]
    assert clock.wall() - clock.now() == pytest.approx(1_700_000_000.0 - 10.0)


def test_time_never_goes_backwards() -> None:
    with pytest.raises(ValueError, match="backwards"):
        FakeClock().advance(-1)


@given(st.lists(st.floats(0.0, 100.0), max_size=30))
def test_monotonic_under_any_sleeps(sleeps: list[float]) -> None:
    clock = FakeClock(start=0.0)
    last = clock.now()
    for s in sleeps:
        clock.sleep_sync(s)
        assert clock.now() >= last
        last = clock.now()
    assert last == pytest.approx(sum(sleeps))


async def test_system_clock_is_monotonic_and_sleeps() -> None:
    clock = SystemClock()
    a = clock.now()
    await clock.sleep(0.001)
    assert clock.now() > a
    fired = asyncio.Event()
    clock.call_later(0.001, fired.set)
    await asyncio.wait_for(fired.wait(), 1.0)
