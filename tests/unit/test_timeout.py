"""Timeout: overall deadline outside a Retry, per-attempt limit inside, clean cancellation."""

from __future__ import annotations

import asyncio

import pytest

from egress import (
    AttemptTimeoutError,
    ConfigurationError,
    DeadlineExceededError,
    Pipeline,
    Retry,
    Timeout,
    time_remaining,
)
from egress.events import AttemptTimedOut, DeadlineExceeded
from egress.testing import FakeClock, RecordingSink


async def test_outer_timeout_is_the_overall_deadline(clock: FakeClock, sink: RecordingSink) -> None:
    async def slow() -> None:
        await clock.sleep(60.0)

    start = clock.now()
    with pytest.raises(DeadlineExceededError) as info:
        await Pipeline(Timeout(2.5), clock=clock, sink=sink).run(slow)
    assert isinstance(info.value, TimeoutError)
    assert clock.now() - start == pytest.approx(2.5)
    assert sink.of(DeadlineExceeded)


async def test_fast_operation_is_untouched(clock: FakeClock) -> None:
    async def fast() -> str:
        await clock.sleep(0.5)
        return "done"

    assert await Pipeline(Timeout(1.0), clock=clock).run(fast) == "done"


async def test_inner_timeout_limits_each_attempt(clock: FakeClock, sink: RecordingSink) -> None:
    durations = iter([5.0, 5.0, 0.1])

    async def op() -> str:
        await clock.sleep(next(durations))
        return "ok"

    pipeline = Pipeline(Timeout(30.0), Retry(on=AttemptTimeoutError), Timeout(1.0),
                        clock=clock, sink=sink)
    assert await pipeline.run(op) == "ok"
    assert len(sink.of(AttemptTimedOut)) == 2


async def test_attempt_limit_never_exceeds_remaining_deadline(clock: FakeClock) -> None:
    seen: list[float | None] = []

    async def op() -> None:
        seen.append(time_remaining())

    clock.advance(0)
    await Pipeline(Timeout(3.0), Retry(on=AttemptTimeoutError), Timeout(10.0), clock=clock).run(op)
    assert seen == [pytest.approx(3.0)]


async def test_deadline_visible_to_inner_code_and_restored(clock: FakeClock) -> None:
    seen: list[float | None] = []

    async def op() -> None:
        seen.append(time_remaining())
        await clock.sleep(1.0)
        seen.append(time_remaining())

    await Pipeline(Timeout(5.0), clock=clock).run(op)
    assert seen == [pytest.approx(5.0), pytest.approx(4.0)]
    assert time_remaining() is None


async def test_external_cancellation_is_not_turned_into_a_timeout() -> None:
    clock = FakeClock(auto_advance=False)

    async def slow() -> None:
        await clock.sleep(60.0)

    task = asyncio.create_task(Pipeline(Timeout(10.0), clock=clock).run(slow))
    await clock.settle()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_timeout_restores_task_cancel_count(clock: FakeClock) -> None:
    async def slow() -> None:
        await clock.sleep(60.0)

    with pytest.raises(DeadlineExceededError):
        await Pipeline(Timeout(1.0), clock=clock).run(slow)
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0


async def test_works_with_the_real_clock() -> None:
    async def slow() -> None:
        await asyncio.sleep(10)

    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(DeadlineExceededError):
        await Pipeline(Timeout(0.05)).run(slow)
    assert loop.time() - start < 1.0


def test_sync_refuses_to_start_after_the_deadline(clock: FakeClock) -> None:
    calls = 0

    def op() -> None:
        nonlocal calls
        calls += 1
        clock.sleep_sync(3.0)  # takes longer than the 2 s deadline

    inner = Pipeline(clock=clock)

    def outer_op() -> None:
        op()
        inner.run_sync(op)  # the second operation must not start

    with pytest.raises(DeadlineExceededError):
        Pipeline(Timeout(2.0), Retry(on=AttemptTimeoutError), Timeout(1.0),
                 clock=clock).run_sync(outer_op)
    assert calls == 1


def test_sync_narrows_the_deadline(clock: FakeClock) -> None:
    seen: list[float | None] = []
    Pipeline(Timeout(4.0), clock=clock).run_sync(lambda: seen.append(time_remaining()))
    assert seen == [pytest.approx(4.0)]


@pytest.mark.parametrize("bad", [0, -1.0, float("inf"), float("nan"), "3", True])
def test_invalid_seconds(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="Timeout"):
        Timeout(bad)  # type: ignore[arg-type]


async def test_many_concurrent_timeouts_each_fire_at_their_own_limit(clock: FakeClock) -> None:
    """The shared watchdog must cancel exactly the calls whose own limit passed, at that time."""
    outcomes: dict[int, tuple[str, float]] = {}
    start = clock.now()

    async def one(i: int) -> None:
        limit = 1.0 + (i * 7 % 11)  # limits 1..11 s, in scrambled order
        duration = 1.0 + (i * 5 % 13)  # durations 1..13 s
        pipeline = Pipeline(Timeout(limit), clock=clock)

        async def work() -> None:
            await clock.sleep(duration)

        try:
            await pipeline.run(work)
        except DeadlineExceededError:
            outcomes[i] = ("timeout", clock.now() - start)
            assert duration >= limit
            assert clock.now() - start == pytest.approx(limit)
        else:
            outcomes[i] = ("done", clock.now() - start)
            assert duration < limit

    await asyncio.gather(*(one(i) for i in range(60)))
    kinds = {kind for kind, _ in outcomes.values()}
    assert kinds == {"timeout", "done"}
    assert len(outcomes) == 60
