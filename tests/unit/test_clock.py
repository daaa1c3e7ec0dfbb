"""FakeClock: virtual time, manual and automatic advance, timers."""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from egress import Pipeline, SystemClock, Timeout
from egress.testing import FakeClock
from egress.testing._clock import DEFAULT_IDLE_THRESHOLD


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


# -- auto-advance jumps only when nothing but the clock can move ---------------------------------


async def _echo_after(delay: float) -> asyncio.Server:
    """A loopback server that answers each line after ``delay`` real seconds."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        await asyncio.sleep(delay)  # real time: the server is slow, not the clock
        writer.write(line)
        await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def test_real_io_under_a_virtual_timeout_is_not_cut_short() -> None:
    # Before: the clock jumped 30 virtual seconds while the socket was still waiting, and the
    # Timeout fired at once.
    clock = FakeClock()
    server = await _echo_after(0.05)
    port = server.sockets[0].getsockname()[1]

    async def call() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"ping\n")
        await writer.drain()
        try:
            return await reader.readline()
        finally:
            writer.close()
            await writer.wait_closed()

    async with server:
        assert await Pipeline(Timeout(30), clock=clock).run(call) == b"ping\n"
    assert clock.now() == 1000.0  # no virtual time passed under real work


async def test_pure_virtual_sleeps_still_jump_at_once() -> None:
    clock = FakeClock(start=0.0)
    started = time.monotonic()

    async def nap(seconds: float) -> float:
        for _ in range(10):
            await clock.sleep(seconds)
        return clock.now()

    assert await asyncio.gather(nap(3600.0), nap(60.0)) == [36000.0, 600.0]
    # 20 jumps: waiting out the idle threshold at each would take 20 x 0.25 s = 5 s; jumping at
    # once takes microseconds. The bound sits far from both.
    assert time.monotonic() - started < DEFAULT_IDLE_THRESHOLD * 10


async def test_a_busy_task_sees_no_virtual_time_pass() -> None:
    # Before: the clock jumped after a few loop turns even though a task was still running.
    clock = FakeClock(start=0.0)
    seen: list[float] = []
    sleeper = asyncio.create_task(clock.sleep(10.0))
    for _ in range(50):  # busy, yielding to the loop as real code does
        seen.append(clock.now())
        await asyncio.sleep(0)
    assert set(seen) == {0.0}
    await sleeper
    assert clock.now() == 10.0


async def test_a_task_blocked_elsewhere_delays_the_jump_by_the_idle_threshold() -> None:
    clock = FakeClock(start=0.0, idle_threshold=0.05)
    forever = asyncio.Event()
    bystander = asyncio.create_task(forever.wait())  # never woken: not the clock's business
    started = time.monotonic()
    await clock.sleep(5.0)
    assert clock.now() == 5.0
    assert time.monotonic() - started >= 0.05  # waited for the loop to stay idle
    bystander.cancel()


def test_idle_threshold_cannot_be_negative() -> None:
    with pytest.raises(ValueError, match="idle_threshold"):
        FakeClock(idle_threshold=-1)
