"""RateLimiter: spreading, refusing (never dropping), deadlines, server pauses, GCRA bounds."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from egress import Pipeline
from egress.errors import ConfigurationError, RateLimitedError, StatusError, TransportError
from egress.events import RateLimitPaused, RateLimitRejected
from egress.policies import RateLimiter, server_pause_hint
from egress.policies.ratelimit import LimiterState, ThrottlePause, server_throttled
from egress.stores import MemoryStore
from egress.testing import FakeClock, RecordingSink


class Recorder:
    """An operation that notes the virtual time of each call."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.times: list[float] = []

    async def __call__(self) -> float:
        self.times.append(self.clock.now())
        return self.clock.now()

    def sync(self) -> float:
        self.times.append(self.clock.now())
        return self.clock.now()


async def test_100_calls_at_25_per_second_are_spread_over_3_96_seconds_none_dropped() -> None:
    clock = FakeClock()
    sink = RecordingSink()
    pipeline = Pipeline(RateLimiter(25, max_wait=10.0), clock=clock, sink=sink)
    op = Recorder(clock)
    start = clock.now()
    results = await asyncio.gather(*(pipeline.run(op) for _ in range(100)),
                                   return_exceptions=True)
    assert len(results) == 100 and all(isinstance(r, float) for r in results)
    assert len(op.times) == 100
    assert op.times[-1] - start >= 3.96 - 1e-9
    gaps = [b - a for a, b in zip(op.times, op.times[1:], strict=False)]
    assert min(gaps) >= 0.04 - 1e-9
    assert sink.events == []


def test_sync_calls_are_spread_the_same_way() -> None:
    clock = FakeClock()
    pipeline = Pipeline(RateLimiter(25, max_wait=10.0), clock=clock)
    op = Recorder(clock)
    start = clock.now()
    for _ in range(100):
        pipeline.run_sync(op.sync)
    assert op.times[-1] - start == pytest.approx(3.96)


async def test_beyond_max_wait_calls_are_refused_loudly_and_not_made() -> None:
    clock = FakeClock()
    sink = RecordingSink()
    pipeline = Pipeline(RateLimiter(25, max_wait=1.0, name="stripe"), clock=clock, sink=sink)
    op = Recorder(clock)
    results = await asyncio.gather(*(pipeline.run(op) for _ in range(100)),
                                   return_exceptions=True)
    made = [r for r in results if isinstance(r, float)]
    refused = [r for r in results if isinstance(r, RateLimitedError)]
    assert len(made) == 26 and len(refused) == 74  # slots at 0, 0.04, ..., 1.0
    assert len(op.times) == 26
    assert all(r.sent is False and r.retry_after is not None and r.retry_after > 1.0
               for r in refused)
    events = sink.of(RateLimitRejected)
    assert len(events) == 74 and events[0].limiter == "stripe"


def test_burst_lets_that_many_through_back_to_back() -> None:
    clock = FakeClock()
    pipeline = Pipeline(RateLimiter(10, burst=5), clock=clock)
    op = Recorder(clock)
    start = clock.now()
    for _ in range(7):
        pipeline.run_sync(op.sync)
    assert [round(t - start, 6) for t in op.times] == [0, 0, 0, 0, 0, 0.1, 0.2]
    clock.advance(10.0)  # the bucket refills, up to burst
    op.times.clear()
    for _ in range(6):
        pipeline.run_sync(op.sync)
    assert [round(t - op.times[0], 6) for t in op.times] == [0, 0, 0, 0, 0, 0.1]


def test_the_wait_is_bounded_by_the_deadline() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2, max_wait=10.0)
    pipeline = Pipeline(limiter, clock=clock)
    op = Recorder(clock)
    pipeline.run_sync(op.sync)
    start = clock.now()
    with pytest.raises(RateLimitedError) as info:
        pipeline.execute_sync("op", op.sync, deadline=0.2)
    assert info.value.retry_after == pytest.approx(0.5)
    assert clock.now() == start  # refused at once, no sleep
    assert len(op.times) == 1
    assert pipeline.execute_sync("op", op.sync, deadline=0.6) == pytest.approx(start + 0.5)


def test_cooldown_pauses_every_caller_and_then_resumes_at_the_rate() -> None:
    clock = FakeClock()
    sink = RecordingSink()
    store = MemoryStore()
    limiter = RateLimiter(10, burst=10, max_wait=5.0, name="api", store=store, clock=clock,
                          sink=sink)
    other = Pipeline(RateLimiter(10, burst=10, max_wait=5.0, name="api", store=store),
                     clock=clock)
    op = Recorder(clock)
    start = clock.now()
    limiter.cooldown(2.0)
    limiter.cooldown(0.5)  # shorter than the pause in force: changes nothing, says nothing
    clock.advance(0.0001)
    limiter.cooldown(2.0)  # the same hint seen again a moment later: the same pause
    for _ in range(3):
        other.run_sync(op.sync)
    assert [round(t - start, 6) for t in op.times] == [2.0, 2.1, 2.2]  # no burst after a pause
    [event] = sink.of(RateLimitPaused)
    assert (event.limiter, event.until) == ("api", start + 2.0)


def test_a_pause_longer_than_max_wait_refuses_with_the_pause_as_hint() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, max_wait=1.0, clock=clock)
    pipeline = Pipeline(limiter, clock=clock)
    limiter.pause_until(clock.now() + 30.0)
    with pytest.raises(RateLimitedError) as info:
        pipeline.run_sync(lambda: None)
    assert info.value.retry_after == pytest.approx(30.0)


async def test_a_429_with_retry_after_pauses_everyone_sharing_the_limiter() -> None:
    clock = FakeClock()
    sink = RecordingSink()
    limiter = RateLimiter(100, burst=100, max_wait=10.0, name="stripe")
    pipeline = Pipeline(limiter, clock=clock, sink=sink)
    op = Recorder(clock)

    async def throttled() -> None:
        raise StatusError(429, retry_after=3.0)

    start = clock.now()
    with pytest.raises(StatusError):
        await pipeline.run(throttled)
    await asyncio.gather(*(pipeline.run(op) for _ in range(3)))
    assert min(op.times) >= start + 3.0
    [event] = sink.of(RateLimitPaused)
    assert event.until == pytest.approx(start + 3.0)


async def test_callers_already_waiting_respect_a_pause_that_starts_meanwhile() -> None:
    clock = FakeClock(auto_advance=False)
    limiter = RateLimiter(1, max_wait=10.0, clock=clock)
    pipeline = Pipeline(limiter, clock=clock)
    op = Recorder(clock)
    await pipeline.run(op)  # uses the only token
    waiter = asyncio.create_task(pipeline.run(op))  # reserved for +1.0
    await asyncio.sleep(0)
    start = clock.now()
    limiter.cooldown(4.0)
    for _ in range(6):
        clock.advance(1.0)
        await clock.settle()
    assert waiter.done()
    assert waiter.result() == pytest.approx(start + 4.0)


def test_a_pause_hint_from_a_server_as_rate_limited_error_pauses_too() -> None:
    clock = FakeClock()
    sink = RecordingSink()
    pipeline = Pipeline(RateLimiter(100, max_wait=10.0), clock=clock, sink=sink)

    def throttled() -> None:
        raise RateLimitedError("server said slow down", retry_after=2.0)

    with pytest.raises(RateLimitedError):
        pipeline.run_sync(throttled)
    assert len(sink.of(RateLimitPaused)) == 1


@pytest.mark.parametrize(("error", "pause"), [
    (StatusError(429, retry_after=2.0), 2.0),
    (StatusError(503, retry_after=1.5), 1.5),
    (StatusError(429), None),
    (StatusError(500, retry_after=2.0), None),
    (StatusError(429, retry_after=0.0), None),
    (RateLimitedError("server", retry_after=4.0), 4.0),
    (TransportError("reset", sent=True), None),
])
def test_server_pause_hint(error: BaseException, pause: float | None) -> None:
    assert server_pause_hint(error) == pause


def test_a_local_refusal_never_pauses_an_outer_limiter() -> None:
    clock = FakeClock()
    sink = RecordingSink()
    inner = RateLimiter(1, max_wait=0.0)
    pipeline = Pipeline(RateLimiter(100, max_wait=10.0, name="outer"), inner, clock=clock,
                        sink=sink)
    pipeline.run_sync(lambda: None)
    with pytest.raises(RateLimitedError) as info:
        pipeline.run_sync(lambda: None)
    assert server_pause_hint(info.value) is None
    assert sink.of(RateLimitPaused) == []


def test_pause_on_can_be_turned_off() -> None:
    clock = FakeClock()
    sink = RecordingSink()
    pipeline = Pipeline(RateLimiter(100, pause_on=None), clock=clock, sink=sink)
    def throttled() -> None:
        raise StatusError(429, retry_after=5.0)

    with pytest.raises(StatusError):
        pipeline.run_sync(throttled)
    assert sink.events == []


async def test_a_cancelled_waiter_gives_its_slot_back_when_it_was_the_last() -> None:
    clock = FakeClock(auto_advance=False)
    pipeline = Pipeline(RateLimiter(1, max_wait=10.0), clock=clock)
    op = Recorder(clock)
    await pipeline.run(op)
    start = clock.now()
    waiter = asyncio.create_task(pipeline.run(op))  # reserved for +1.0
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    late = asyncio.create_task(pipeline.run(op))  # takes the returned slot, not +2.0
    await asyncio.sleep(0)
    clock.advance(1.0)
    await clock.settle()
    assert late.done()
    assert late.result() == pytest.approx(start + 1.0)


def test_named_limiters_share_one_bucket() -> None:
    store = MemoryStore()
    clock = FakeClock()
    a = Pipeline(RateLimiter(1, name="x", store=store), clock=clock)
    b = Pipeline(RateLimiter(1, name="x", store=store), clock=clock)
    op = Recorder(clock)
    start = clock.now()
    a.run_sync(op.sync)
    b.run_sync(op.sync)
    assert op.times == [start, start + 1.0]
    with pytest.raises(ConfigurationError, match="other settings"):
        RateLimiter(2, name="x", store=store)


@given(rate=st.sampled_from([0.5, 1.0, 7.0, 25.0]), burst=st.integers(1, 5),
       gaps=st.lists(st.floats(0.0, 2.0), min_size=1, max_size=40))
@settings(max_examples=100, deadline=None)
def test_no_window_ever_holds_more_than_burst_plus_rate_times_its_length(
        rate: float, burst: int, gaps: list[float]) -> None:
    state = LimiterState(rate, burst)
    now = 0.0
    starts = []
    for gap in gaps:
        now += gap
        wait = state.reserve(now, float("inf"))
        assert wait >= 0
        starts.append(now + wait)
    starts.sort()
    for i in range(len(starts)):
        for j in range(i, len(starts)):
            assert j - i + 1 <= burst + (starts[j] - starts[i]) * rate + 1e-6


@pytest.mark.parametrize(("args", "settings", "named"), [
    ((0,), {}, "rate"),
    ((float("inf"),), {}, "rate"),
    ((1,), {"burst": 0}, "burst"),
    ((1,), {"burst": 1.5}, "burst"),
    ((1,), {"max_wait": -1}, "max_wait"),
    ((1,), {"pause_on": 3}, "pause_on"),
])
def test_bad_settings_are_refused_by_name(args: tuple[Any, ...], settings: dict[str, Any],
                                          named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        RateLimiter(*args, **settings)


def test_repr() -> None:
    assert repr(RateLimiter(25)) == "RateLimiter(25.0, burst=1, max_wait=5.0, name=None)"


# -- every cancelled reservation is given back (issue 15 §2) ---------------------------------


async def test_waiters_cancelled_out_of_order_give_every_slot_back() -> None:
    clock = FakeClock(auto_advance=False)
    pipeline = Pipeline(RateLimiter(1, max_wait=10.0), clock=clock)
    op = Recorder(clock)
    await pipeline.run(op)  # slot 0 used: the next ones are +1, +2, +3, +4
    start = clock.now()
    waiters = [asyncio.create_task(pipeline.run(op)) for _ in range(4)]
    await asyncio.sleep(0)
    for index in (1, 0, 2):  # +2, +1, +3 given up; only +4 (the last) keeps waiting
        waiters[index].cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiters[index]
    late = [asyncio.create_task(pipeline.run(op)) for _ in range(4)]
    await asyncio.sleep(0)
    for _ in range(5):
        clock.advance(1.0)
        await clock.settle()
    assert all(task.done() for task in (*late, waiters[3]))
    starts = sorted(task.result() - start for task in (*late, waiters[3]))
    # The three returned slots are taken again, in order, before a new one at +5.
    assert starts == pytest.approx([1.0, 2.0, 3.0, 4.0, 5.0])


def test_a_returned_slot_is_reused_while_it_is_ahead_never_once_it_has_passed() -> None:
    state = LimiterState(1.0, 1)
    assert [state.reserve(0.0, 10.0) for _ in range(4)] == [0.0, 1.0, 2.0, 3.0]
    state.refund(0.0, 1.0)  # +1 and +2 given back, neither the last reserved
    state.refund(0.0, 2.0)
    assert state.reserve(0.5, 10.0) == pytest.approx(0.5)  # takes +1
    # At 2.5 the slot +2 has passed: reusing it would put two calls 0.5 s apart. Next: +4.
    assert state.reserve(2.5, 10.0) == pytest.approx(1.5)


def test_returned_slots_at_the_tail_move_the_bucket_back() -> None:
    state = LimiterState(1.0, 1)
    assert [state.reserve(0.0, 10.0) for _ in range(4)] == [0.0, 1.0, 2.0, 3.0]
    state.refund(0.0, 2.0)  # not the last: kept aside
    state.refund(0.0, 3.0)  # the last: the bucket moves back, and +2 is the tail now too
    assert state.reserve(0.0, 10.0) == pytest.approx(2.0)
    assert state.reserve(0.0, 10.0) == pytest.approx(3.0)


@given(rate=st.sampled_from([1.0, 4.0]), burst=st.integers(1, 3),
       steps=st.lists(st.tuples(st.sampled_from(["reserve", "cancel"]), st.floats(0.0, 1.0)),
                      min_size=1, max_size=40))
@settings(max_examples=100, deadline=None)
def test_refunds_never_let_a_window_hold_more_than_burst_plus_rate_times_its_length(
        rate: float, burst: int, steps: list[tuple[str, float]]) -> None:
    state = LimiterState(rate, burst)
    now = 0.0
    waiting: list[tuple[float, float]] = []  # (reserved at, wait) of calls not started yet
    starts: list[float] = []
    for action, value in steps:
        now += value
        # Calls whose slot has come start (they can no longer be cancelled).
        starts.extend(at + wait for at, wait in waiting if at + wait <= now)
        waiting = [(at, wait) for at, wait in waiting if at + wait > now]
        if action == "reserve":
            wait = state.reserve(now, float("inf"))
            assert wait >= 0
            if wait == 0:
                starts.append(now)
            else:
                waiting.append((now, wait))
        elif waiting:
            at, wait = waiting.pop(int(value * len(waiting)) % len(waiting))
            state.refund(at, wait)
    starts.extend(at + wait for at, wait in waiting)
    starts.sort()
    for i in range(len(starts)):
        for j in range(i, len(starts)):
            assert j - i + 1 <= burst + (starts[j] - starts[i]) * rate + 1e-6


# -- a 429 without Retry-After pauses everyone, growing (issue 10 §5) ------------------------


def raise_429() -> None:
    raise StatusError(429)  # Stripe's usual answer: no Retry-After


def pauses(sink: RecordingSink) -> list[float]:
    return [e.until - e.at for e in sink.of(RateLimitPaused)]


def test_a_429_without_retry_after_pauses_every_caller_growing_then_resets() -> None:
    clock = FakeClock()
    sink = RecordingSink()
    store = MemoryStore()
    pipeline = Pipeline(RateLimiter(1000, burst=100, max_wait=60.0, name="stripe", store=store),
                        clock=clock, sink=sink)
    other = Pipeline(RateLimiter(1000, burst=100, max_wait=60.0, name="stripe", store=store),
                     clock=clock, sink=sink)
    for _ in range(7):  # each call waits out the pause in force, and is told to slow down again
        with pytest.raises(StatusError):
            pipeline.run_sync(raise_429)
    assert pauses(sink) == pytest.approx([0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0])  # capped
    op = Recorder(clock)
    other.run_sync(op.sync)  # another caller of the limiter waits the pause out too ...
    assert op.times[-1] >= sink.of(RateLimitPaused)[-1].until - 1e-9
    with pytest.raises(StatusError):  # ... and its success (sent after the pause) resets it
        pipeline.run_sync(raise_429)
    assert pauses(sink)[-1] == pytest.approx(0.5)


async def test_429s_of_calls_already_in_flight_do_not_grow_the_pause() -> None:
    clock = FakeClock(auto_advance=False)
    sink = RecordingSink()
    pipeline = Pipeline(RateLimiter(1000, burst=100), clock=clock, sink=sink)
    gate = asyncio.Event()

    async def throttled() -> None:
        await gate.wait()
        raise StatusError(429)

    calls = [asyncio.create_task(pipeline.run(throttled)) for _ in range(10)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, StatusError) for r in results)
    assert pauses(sink) == pytest.approx([0.5])  # ten answers to one burst: one pause


def test_the_growing_pause_is_configurable_and_can_be_turned_off() -> None:
    clock = FakeClock()
    sink = RecordingSink()
    pipeline = Pipeline(RateLimiter(100, throttle=None), clock=clock, sink=sink)
    with pytest.raises(StatusError):
        pipeline.run_sync(raise_429)
    assert sink.of(RateLimitPaused) == []
    custom = Pipeline(RateLimiter(100, throttle=ThrottlePause(initial=0.1, cap=0.15)),
                      clock=clock, sink=sink)
    for _ in range(3):
        with pytest.raises(StatusError):
            custom.run_sync(raise_429)
    assert pauses(sink) == pytest.approx([0.1, 0.15, 0.15])
    with pytest.raises(ConfigurationError, match="cap"):
        ThrottlePause(initial=1.0, cap=0.5)
    with pytest.raises(ConfigurationError, match="throttle"):
        RateLimiter(1, throttle=0.5)  # type: ignore[arg-type]


@pytest.mark.parametrize(("error", "throttled"), [
    (StatusError(429), True),
    (StatusError(429, retry_after=2.0), False),  # a hint: pause_on's business
    (StatusError(429, retry_after=0.0), False),  # "go now" is a hint too
    (StatusError(503), False),  # unavailable, not "slow down": the breaker's business
    (RateLimitedError("local"), False),
])
def test_server_throttled(error: BaseException, throttled: bool) -> None:
    assert server_throttled(error) is throttled


async def test_a_state_on_a_server_may_reserve_asynchronously() -> None:
    """A store backed by a server (Redis) hands out a state whose first reservation is awaited."""
    awaited: list[float] = []

    class RemoteState(LimiterState):
        __slots__ = ()

        async def reserve_async(self, now: float, max_wait: float,
                                deadline: float | None = None) -> float:
            awaited.append(now)
            return self.reserve(now, max_wait, deadline)

    class RemoteStore(MemoryStore):
        def shared(self, kind: str, name: str, factory: Any) -> Any:
            return super().shared(kind, name, lambda: RemoteState(2.0, 1))

    clock = FakeClock()
    pipeline = Pipeline(RateLimiter(2.0, name="remote", store=RemoteStore()), clock=clock)
    op = Recorder(clock)
    start = clock.now()
    await pipeline.run(op)
    await pipeline.run(op)
    assert len(awaited) == 2
    assert op.times == pytest.approx([start, start + 0.5])
