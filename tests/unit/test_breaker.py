"""CircuitBreaker: the resilience4j-style scenarios, classification, manual states, registry."""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
from collections.abc import Callable
from typing import Any

import pytest

from egress import Pipeline, Timeout
from egress.errors import (
    AttemptTimeoutError,
    BulkheadFullError,
    CircuitOpenError,
    ConfigurationError,
    DeadlineExceededError,
    OutcomeUnknown,
    PaymentDeclined,
    ProviderUnavailable,
    RateLimitedError,
    ResponseError,
    StatusError,
    TransportError,
)
from egress.events import CircuitRejected, CircuitStateChanged, CircuitThresholdExceeded
from egress.policies import (
    BreakerRegistry,
    CircuitBreaker,
    CircuitState,
    CountWindow,
    TimeWindow,
    default_failure,
)
from egress.stores import MemoryStore
from egress.testing import FakeClock, RecordingSink

OPEN, CLOSED, HALF_OPEN = CircuitState.OPEN, CircuitState.CLOSED, CircuitState.HALF_OPEN


def refused() -> TransportError:
    return TransportError("refused", sent=False)


def fail_now() -> None:
    raise refused()


class Harness:
    """A breaker in a sync pipeline on a manual fake clock, counting the calls that reach it."""

    def __init__(self, **settings: Any) -> None:
        self.clock = FakeClock(auto_advance=False)
        self.sink = RecordingSink()
        settings.setdefault("store", None)
        self.breaker = CircuitBreaker("upstream", clock=self.clock, sink=self.sink, **settings)
        self.pipeline = Pipeline(self.breaker, clock=self.clock, sink=self.sink)
        self.reached = 0

    def call(self, error: BaseException | None = None, duration: float = 0.0) -> str:
        def op() -> str:
            self.reached += 1
            self.clock.advance(duration)
            if error is not None:
                raise error
            return "ok"

        return self.pipeline.run_sync(op)

    def ok(self, n: int = 1, duration: float = 0.0) -> None:
        for _ in range(n):
            assert self.call(duration=duration) == "ok"

    def fail(self, n: int = 1, error: Callable[[], BaseException] = refused,
             duration: float = 0.0) -> None:
        for _ in range(n):
            with pytest.raises(type(error())):
                self.call(error(), duration)

    def rejected(self) -> CircuitOpenError:
        before = self.reached
        with pytest.raises(CircuitOpenError) as info:
            self.call()
        assert self.reached == before, "a rejected call must not reach the operation"
        return info.value

    def transitions(self) -> list[tuple[str, str]]:
        return [(e.old, e.new) for e in self.sink.of(CircuitStateChanged)]


# ---------------------------------------------------------------------------------------------
# Opening


def test_opens_at_the_failure_rate_once_the_window_is_judged() -> None:
    h = Harness(window=CountWindow(5), minimum_calls=5, failure_rate_threshold=0.5)
    h.fail(3)
    h.ok(1)
    assert h.breaker.state is CLOSED  # 4 calls: not judged yet
    h.ok(1)  # F F F S S: 60 % of 5
    assert h.breaker.state is OPEN
    error = h.rejected()
    assert error.retry_after == pytest.approx(60.0)
    assert error.sent is False
    snap = h.breaker.snapshot()
    assert snap.not_permitted_calls == 1
    assert snap.failure_rate == pytest.approx(0.6)
    [change] = h.sink.of(CircuitStateChanged)
    assert (change.old, change.new, change.failure_rate) == ("closed", "open", pytest.approx(0.6))
    [rejection] = h.sink.of(CircuitRejected)
    assert rejection.breaker == "upstream" and rejection.retry_after == pytest.approx(60.0)


def test_stays_closed_below_the_minimum_number_of_calls() -> None:
    h = Harness(window=CountWindow(100), minimum_calls=10)
    h.fail(9)
    assert h.breaker.state is CLOSED
    snap = h.breaker.snapshot()
    assert snap.failure_rate is None and snap.calls == 9 and snap.failed_calls == 9
    h.fail(1)
    assert h.breaker.state is OPEN


def test_minimum_calls_above_a_count_window_is_lowered_to_its_size() -> None:
    h = Harness(window=CountWindow(4), minimum_calls=100)
    assert h.breaker.settings.minimum_calls == 4
    h.fail(4)
    assert h.breaker.state is OPEN


def test_below_the_threshold_it_stays_closed_and_old_failures_slide_out() -> None:
    h = Harness(window=CountWindow(4), minimum_calls=4, failure_rate_threshold=0.5)
    h.fail(1)
    h.ok(3)  # 25 %
    h.ok(1)  # the failure slides out
    snap = h.breaker.snapshot()
    assert (snap.calls, snap.failed_calls, snap.failure_rate) == (4, 0, 0.0)
    h.fail(1)
    h.ok(1)
    h.fail(1)  # S S F S F? window is the last 4: S F S F -> 50 %
    assert h.breaker.state is OPEN


def test_slow_calls_open_it_even_when_they_succeed() -> None:
    h = Harness(window=CountWindow(4), minimum_calls=4, slow_call_duration=2.0,
                slow_call_rate_threshold=0.75)
    h.ok(2, duration=2.5)
    h.ok(1, duration=0.1)
    assert h.breaker.state is CLOSED
    h.ok(1, duration=3.0)
    assert h.breaker.state is OPEN
    [change] = h.sink.of(CircuitStateChanged)
    assert change.slow_call_rate == pytest.approx(0.75)
    assert change.failure_rate == 0.0


def test_with_slow_call_detection_off_nothing_is_slow_and_failures_still_count() -> None:
    h = Harness(window=CountWindow(4), minimum_calls=4, slow_call_duration=None,
                slow_call_rate_threshold=0.25)
    h.ok(3, duration=3600.0)
    h.fail(1, duration=3600.0)
    assert h.breaker.state is CLOSED
    assert h.breaker.snapshot().slow_calls == 0
    h.ok(1)  # the window is quiet only once full of successes: still recorded here
    h.fail(1)
    assert h.breaker.state is OPEN
    assert h.rejected().retry_after == pytest.approx(60.0)


async def test_untimed_drivers_record_like_the_timed_ones() -> None:
    clock = FakeClock(auto_advance=False)
    sink = RecordingSink()
    breaker = CircuitBreaker("untimed", window=CountWindow(2), minimum_calls=2,
                             slow_call_duration=None, failure_rate_threshold=1.0,
                             wait_in_open=5.0, half_open_calls=1, store=None, clock=clock,
                             sink=sink)
    pipeline = Pipeline(breaker, clock=clock, sink=sink)

    @breaker
    async def fail_async() -> None:
        raise refused()

    async def ok_async() -> str:
        return "ok"

    guarded_ok = breaker(ok_async)
    assert await guarded_ok() == "ok"
    assert pipeline.run_sync(lambda: "ok") == "ok"
    assert breaker(lambda: "ok")() == "ok"
    assert breaker.snapshot().calls == 2
    for _ in range(2):
        with pytest.raises(TransportError):
            await fail_async()
    assert breaker.state is OPEN
    clock.advance(5.0)
    assert await pipeline.run(ok_async) == "ok"  # the probe, recorded with the clock's time
    assert breaker.state is CLOSED
    assert [e.at for e in sink.of(CircuitStateChanged)] == [clock.now() - 5.0, clock.now(),
                                                            clock.now()]


@pytest.mark.parametrize("error", [
    lambda: StatusError(400), lambda: StatusError(402), lambda: StatusError(404),
    lambda: StatusError(409), lambda: StatusError(429, retry_after=1.0),
    lambda: PaymentDeclined("card_declined", decline_code="generic_decline"),
    lambda: ValueError("a bug of the caller"), lambda: ResponseError("big", reason="oversized"),
])
def test_caller_faults_never_open_it(error: Callable[[], BaseException]) -> None:
    h = Harness(window=CountWindow(10), minimum_calls=10)
    h.fail(30, error)
    assert h.breaker.state is CLOSED
    snap = h.breaker.snapshot()
    assert snap.failed_calls == 0 and snap.calls == 10  # counted: the upstream answered


@pytest.mark.parametrize("error", [
    lambda: BulkheadFullError("full"), lambda: RateLimitedError("slow down"),
    lambda: CircuitOpenError("inner"), KeyboardInterrupt,
])
def test_rejections_and_interrupts_are_not_counted_at_all(
        error: Callable[[], BaseException]) -> None:
    h = Harness(window=CountWindow(10), minimum_calls=10)
    h.fail(20, error)
    assert h.breaker.snapshot().calls == 0


@pytest.mark.parametrize(("error", "counted"), [
    (refused(), True),
    (AttemptTimeoutError("slow"), True),
    (StatusError(500), True),
    (StatusError(503), True),
    (StatusError(499), False),
    (DeadlineExceededError("late"), True),
    (ResponseError("cut", reason="truncated"), True),
    (ResponseError("garbage", reason="malformed"), True),
    (ResponseError("redirect", reason="redirect"), False),
    # The generic breaker knows no payment errors (layers look down): see payment_failure.
    (ProviderUnavailable("down"), False),
    (OutcomeUnknown("?", idempotency_key="k", reference="r", operation="create"), False),
    (PaymentDeclined("no"), False),
    (ConnectionResetError(), True),
    (TimeoutError(), True),
    (KeyError("x"), False),
    (RateLimitedError("local"), False),
    (asyncio.CancelledError(), False),
])
def test_default_failure_classification(error: BaseException, counted: bool) -> None:
    assert default_failure(error) is counted


def test_a_payment_adapter_passes_its_own_classification_in() -> None:
    from egress.payments.breaker import payment_failure

    unknown = OutcomeUnknown("?", idempotency_key="k", reference="r", operation="create")
    for error in (ProviderUnavailable("down"), unknown, StatusError(503), refused()):
        assert payment_failure(error) is True
    for error in (PaymentDeclined("no"), StatusError(400), KeyError("x")):
        assert payment_failure(error) is False
    h = Harness(window=CountWindow(2), minimum_calls=2, failure=payment_failure)
    h.fail(2, lambda: ProviderUnavailable("down"))
    assert h.breaker.state is OPEN


def test_the_state_machine_is_pure_its_decisions_are_data() -> None:
    """The state emits nothing and raises nothing; the driver turns its notices into both."""
    from egress.policies._breaker_state import REFUSED, Refused, StateChanged

    h = Harness(window=CountWindow(2), minimum_calls=2, wait_in_open=5.0)
    state = h.breaker._state
    gen = state.fast_gen
    assert state.on_failure(gen, 0.0, 1.0) == ()
    (opened_,) = state.on_failure(gen, 0.0, 1.0)
    assert isinstance(opened_, StateChanged)
    assert (opened_.old, opened_.new, opened_.failure_rate) == (CLOSED, OPEN, 1.0)
    assert h.sink.events == []  # nothing emitted by the state itself
    refused_gen, notices = state.acquire(2.0)
    assert refused_gen == REFUSED and notices == (Refused(2.0, pytest.approx(4.0)),)
    assert h.sink.events == []
    probe, notices = state.acquire(6.0)
    assert probe >= 0 and [(n.old, n.new) for n in notices] == [(OPEN, HALF_OPEN)]


def test_failure_and_ignore_are_configurable() -> None:
    h = Harness(window=CountWindow(4), minimum_calls=4,
                failure=[KeyError, lambda e: isinstance(e, StatusError) and e.status_code == 429],
                ignore=lambda e: isinstance(e, KeyError) and e.args == ("skip",))
    assert h.breaker.classify(KeyError("x")) == "failure"
    assert h.breaker.classify(KeyError("skip")) == "ignored"
    assert h.breaker.classify(StatusError(429)) == "failure"
    assert h.breaker.classify(StatusError(500)) == "success"  # replaced the default
    assert h.breaker.classify(BulkheadFullError("x")) == "ignored"  # always
    h.fail(4, lambda: KeyError("skip"))
    assert h.breaker.snapshot().calls == 0
    h.fail(4, lambda: StatusError(429))
    assert h.breaker.state is OPEN


# ---------------------------------------------------------------------------------------------
# OPEN and HALF_OPEN


def opened(**settings: Any) -> Harness:
    settings.setdefault("window", CountWindow(2))
    settings.setdefault("minimum_calls", 2)
    h = Harness(**settings)
    h.fail(2)
    assert h.breaker.state is OPEN
    return h


def test_stays_open_before_the_wait_and_lets_a_probe_through_after_it() -> None:
    h = opened(wait_in_open=5.0, half_open_calls=1)
    h.clock.advance(3.0)
    assert h.rejected().retry_after == pytest.approx(2.0)
    assert h.reached == 2
    h.clock.advance(3.0)
    h.ok(1)  # the probe
    assert h.breaker.state is CLOSED
    assert h.transitions() == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    assert h.breaker.snapshot().calls == 0  # a fresh window


def test_one_failed_probe_reopens_with_a_longer_wait() -> None:
    h = opened(wait_in_open=5.0, wait_multiplier=1.5, max_wait_in_open=10.0, half_open_calls=1)
    h.clock.advance(5.0)
    h.fail(1)
    assert h.breaker.state is OPEN
    assert h.rejected().retry_after == pytest.approx(7.5)
    h.clock.advance(7.5)
    h.fail(1)
    assert h.rejected().retry_after == pytest.approx(10.0)  # 11.25, capped
    assert h.breaker.snapshot().consecutive_opens == 3
    h.clock.advance(10.0)
    h.ok(1)
    assert h.breaker.state is CLOSED
    h.fail(2)  # opening again after closing starts from the first wait
    assert h.rejected().retry_after == pytest.approx(5.0)


def test_half_open_verdict_uses_the_thresholds_over_the_trial_calls() -> None:
    h = opened(wait_in_open=1.0, half_open_calls=4, failure_rate_threshold=0.5)
    h.clock.advance(1.0)
    h.fail(1)
    h.ok(2)
    assert h.breaker.state is HALF_OPEN  # 1 of 4 failed; a 2nd failure would reach 50 %
    h.ok(1)
    assert h.breaker.state is CLOSED
    h.fail(2)
    h.clock.advance(1.0)
    h.fail(1)
    h.ok(1)
    assert h.breaker.state is HALF_OPEN
    h.fail(1)  # 2 of 4: 50 %, open without waiting for the 4th
    assert h.breaker.state is OPEN


def test_the_verdict_comes_as_soon_as_it_is_certain() -> None:
    h = opened(wait_in_open=1.0, half_open_calls=10, failure_rate_threshold=0.5)
    h.clock.advance(1.0)
    h.ok(5)
    assert h.breaker.state is HALF_OPEN  # 5 failures could still follow
    h.ok(1)
    assert h.breaker.state is CLOSED


async def test_exactly_n_probes_pass_when_50_callers_race_in_half_open() -> None:
    clock = FakeClock(auto_advance=False)
    sink = RecordingSink()
    breaker = CircuitBreaker("racy", window=CountWindow(2), minimum_calls=2, wait_in_open=5.0,
                             half_open_calls=3, store=None)
    pipeline = Pipeline(breaker, clock=clock, sink=sink)
    release = asyncio.Event()
    reached = 0

    async def failing() -> None:
        raise refused()

    async def probe() -> str:
        nonlocal reached
        reached += 1
        await release.wait()
        return "ok"

    for _ in range(2):
        with pytest.raises(TransportError):
            await pipeline.run(failing)
    clock.advance(5.0)
    tasks = [asyncio.create_task(pipeline.run(probe)) for _ in range(50)]
    await asyncio.sleep(0)
    assert reached == 3
    assert breaker.state is HALF_OPEN
    release.set()
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5.0)
    assert results.count("ok") == 3
    assert all(isinstance(r, CircuitOpenError) for r in results if r != "ok")
    assert breaker.state is CLOSED
    changes = [(e.old, e.new) for e in sink.of(CircuitStateChanged)]
    assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    assert len(sink.of(CircuitRejected)) == 47


def test_exactly_n_probes_pass_when_threads_race_in_half_open() -> None:
    clock = FakeClock(auto_advance=False)
    breaker = CircuitBreaker("threads", window=CountWindow(2), minimum_calls=2,
                             wait_in_open=5.0, half_open_calls=4, store=None)
    pipeline = Pipeline(breaker, clock=clock)
    for _ in range(2):
        with pytest.raises(TransportError):
            pipeline.run_sync(fail_now)
    clock.advance(5.0)
    start = threading.Barrier(32)
    release = threading.Event()
    reached = []
    outcomes: list[str] = []

    def probe() -> str:
        reached.append(1)
        release.wait(5.0)
        return "ok"

    def caller() -> None:
        start.wait(5.0)
        try:
            outcomes.append(pipeline.run_sync(probe))
        except CircuitOpenError:
            outcomes.append("rejected")
            if outcomes.count("rejected") == 28:
                release.set()

    threads = [threading.Thread(target=caller) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10.0)
    assert len(reached) == 4
    assert outcomes.count("ok") == 4 and outcomes.count("rejected") == 28
    assert breaker.state is CLOSED


def test_a_call_from_before_the_opening_is_not_a_probe() -> None:
    h = opened(wait_in_open=1.0, half_open_calls=1)
    state = h.breaker._state
    h.breaker.reset()
    stale = state.fast_gen  # a call starts while CLOSED ...
    h.fail(2)  # ... the breaker opens meanwhile ...
    h.clock.advance(1.0)
    probe, _ = state.acquire(h.clock.now())  # ... and a probe is let through
    assert state.on_failure(stale, 0.0, h.clock.now()) == ()  # the old call fails late
    assert h.breaker.state is HALF_OPEN
    (closed,) = state.on_success(probe, h.clock.now(), h.clock.now())
    assert (closed.old, closed.new) == (HALF_OPEN, CLOSED)
    assert h.breaker.state is CLOSED


def test_an_ignored_probe_gives_its_slot_back() -> None:
    h = opened(wait_in_open=1.0, half_open_calls=1)
    h.clock.advance(1.0)
    h.fail(1, lambda: RateLimitedError("local"))
    assert h.breaker.state is HALF_OPEN
    h.ok(1)
    assert h.breaker.state is CLOSED


async def test_a_cancelled_probe_gives_its_slot_back() -> None:
    clock = FakeClock(auto_advance=False)
    breaker = CircuitBreaker("c", window=CountWindow(1), minimum_calls=1, wait_in_open=1.0,
                             half_open_calls=1, store=None)
    pipeline = Pipeline(breaker, clock=clock)

    async def failing() -> None:
        raise refused()

    async def ok() -> str:
        return "ok"

    with pytest.raises(TransportError):
        await pipeline.run(failing)
    clock.advance(1.0)
    hanging = asyncio.create_task(pipeline.run(asyncio.sleep, 3600))
    await asyncio.sleep(0)
    with pytest.raises(CircuitOpenError):
        await pipeline.run(ok)
    hanging.cancel()
    with pytest.raises(asyncio.CancelledError):
        await hanging
    assert await pipeline.run(ok) == "ok"
    assert breaker.state is CLOSED


async def test_a_hung_call_cut_by_an_outer_timeout_counts_as_a_failure() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("hangs", window=CountWindow(2), minimum_calls=2, store=None)
    pipeline = Pipeline(Timeout(1.0), breaker, clock=clock)
    for _ in range(2):
        with pytest.raises(DeadlineExceededError):
            await pipeline.run(asyncio.sleep, 3600)
    assert breaker.state is OPEN
    assert breaker.snapshot().failed_calls == 2


async def test_a_cancellation_by_the_caller_is_not_counted() -> None:
    clock = FakeClock(auto_advance=False)
    breaker = CircuitBreaker("cancelled", window=CountWindow(1), minimum_calls=1, store=None)
    pipeline = Pipeline(breaker, clock=clock)
    for deadline in (None, 60.0):
        task = asyncio.create_task(pipeline.execute("hang", hang, deadline=deadline))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert breaker.state is CLOSED
    assert breaker.snapshot().calls == 0


async def hang() -> None:
    await asyncio.sleep(3600)


def test_max_wait_in_half_open_reopens_a_breaker_whose_probes_hang() -> None:
    h = opened(wait_in_open=1.0, half_open_calls=1, max_wait_in_half_open=10.0,
               wait_multiplier=2.0)
    h.clock.advance(1.0)
    state = h.breaker._state
    probe, _ = state.acquire(h.clock.now())  # a probe that never comes back
    h.clock.advance(9.0)
    assert h.rejected().retry_after is None  # slots taken: no promise
    h.clock.advance(1.0)
    assert h.rejected().retry_after == pytest.approx(2.0)
    assert h.breaker.state is OPEN
    assert state.on_success(probe, 0.0, h.clock.now()) == ()  # too late: ignored
    assert h.breaker.state is OPEN
    assert h.transitions()[-1] == ("half_open", "open")


# ---------------------------------------------------------------------------------------------
# Time window


def test_time_window_forgets_calls_older_than_its_span() -> None:
    h = Harness(window=TimeWindow(seconds=10.0, buckets=10), minimum_calls=4)
    h.fail(3)
    h.clock.advance(10.0)
    h.fail(1)
    assert h.breaker.state is CLOSED  # the first three have slid out
    snap = h.breaker.snapshot()
    assert (snap.calls, snap.failed_calls) == (1, 1)
    h.ok(1)
    h.fail(2)
    assert h.breaker.state is OPEN  # 3 of 4 in the last 10 s


def test_time_window_snapshot_is_read_only_and_current() -> None:
    h = Harness(window=TimeWindow(seconds=4.0, buckets=4), minimum_calls=1,
                failure_rate_threshold=1.0)
    h.ok(1)
    h.clock.advance(1.0)
    h.fail(1)
    h.clock.advance(1.0)
    h.ok(2)
    assert h.breaker.snapshot().calls == 4
    h.clock.advance(2.0)
    snap = h.breaker.snapshot()
    assert (snap.calls, snap.failed_calls) == (3, 1)
    h.clock.advance(1.0)
    assert h.breaker.snapshot().calls == 2
    h.clock.advance(100.0)
    assert h.breaker.snapshot().calls == 0
    h.ok(1)
    assert h.breaker.snapshot().calls == 1


def test_time_window_reaching_the_minimum_again_is_judged() -> None:
    h = Harness(window=TimeWindow(seconds=2.0, buckets=2), minimum_calls=3)
    h.fail(2)
    h.clock.advance(1.0)
    h.ok(1)  # 3 calls: 2 of 3 failed -> open
    assert h.breaker.state is OPEN


# ---------------------------------------------------------------------------------------------
# Manual states


def test_forced_open_rejects_without_a_promise_until_reset() -> None:
    h = Harness(window=CountWindow(2), minimum_calls=2)
    h.breaker.force_open()
    assert h.rejected().retry_after is None
    h.clock.advance(3600.0)
    h.rejected()
    h.breaker.reset()
    h.ok(1)
    assert h.transitions() == [("closed", "forced_open"), ("forced_open", "closed")]


def test_disabled_lets_everything_through_and_records_nothing() -> None:
    h = Harness(window=CountWindow(2), minimum_calls=2)
    h.breaker.disable()
    h.fail(10)
    assert h.breaker.state is CircuitState.DISABLED
    assert h.breaker.snapshot().calls == 0


def test_metrics_only_records_and_emits_but_never_rejects() -> None:
    h = Harness(window=CountWindow(4), minimum_calls=4)
    h.breaker.metrics_only()
    h.fail(6)
    h.ok(4)
    h.fail(4)
    assert h.breaker.state is CircuitState.METRICS_ONLY
    assert h.reached == 14
    exceeded = h.sink.of(CircuitThresholdExceeded)
    assert len(exceeded) == 2  # crossed, fell back below with the successes, crossed again
    assert exceeded[0].failure_rate == 1.0
    assert h.breaker.snapshot().failure_rate == 1.0


def test_trip_opens_by_hand_and_events_are_not_repeated() -> None:
    h = Harness()
    h.breaker.trip()
    h.breaker.reset()
    h.breaker.reset()
    assert h.transitions() == [("closed", "open"), ("open", "closed")]


def test_only_one_open_event_under_concurrent_failures() -> None:
    clock = FakeClock(auto_advance=False)
    sink = RecordingSink()
    breaker = CircuitBreaker("many", window=CountWindow(10), minimum_calls=10, store=None)
    pipeline = Pipeline(breaker, clock=clock, sink=sink)
    start = threading.Barrier(16)

    def caller() -> None:
        start.wait(5.0)
        for _ in range(50):
            with contextlib.suppress(TransportError, CircuitOpenError):
                pipeline.run_sync(fail_now)

    threads = [threading.Thread(target=caller) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10.0)
    assert [(e.old, e.new) for e in sink.of(CircuitStateChanged)] == [("closed", "open")]


# ---------------------------------------------------------------------------------------------
# Direct use, sharing, registry, configuration


async def test_decorator_guards_async_and_sync_functions() -> None:
    clock = FakeClock(auto_advance=False)
    sink = RecordingSink()
    breaker = CircuitBreaker("deco", window=CountWindow(2), minimum_calls=2, store=None,
                             failure_rate_threshold=1.0, clock=clock, sink=sink)
    calls = []

    @breaker
    async def fetch(x: int) -> int:
        calls.append(x)
        if x < 0:
            raise refused()
        return x * 2

    @breaker
    def fetch_sync(x: int) -> int:
        calls.append(x)
        return x

    assert await fetch(2) == 4
    assert fetch_sync(3) == 3
    assert fetch.__name__ == "fetch"
    for _ in range(2):
        with pytest.raises(TransportError):
            await fetch(-1)
    with pytest.raises(CircuitOpenError):
        await fetch(5)
    with pytest.raises(CircuitOpenError):
        fetch_sync(5)
    assert calls == [2, 3, -1, -1]
    assert [e.new for e in sink.of(CircuitStateChanged)] == ["open"]
    assert len(sink.of(CircuitRejected)) == 2


def test_breakers_of_one_name_share_one_state() -> None:
    store = MemoryStore()
    a = CircuitBreaker("shared", window=CountWindow(2), minimum_calls=2, store=store)
    b = CircuitBreaker("shared", window=CountWindow(2), minimum_calls=2, store=store)
    clock = FakeClock(auto_advance=False)
    for breaker in (a, b):
        with pytest.raises(TransportError):
            Pipeline(breaker, clock=clock).run_sync(fail_now)
    assert a.state is OPEN and b.state is OPEN
    with pytest.raises(ConfigurationError, match="other settings"):
        CircuitBreaker("shared", window=CountWindow(3), store=store)


def test_registry_returns_one_breaker_per_name_and_forgets_the_least_recent() -> None:
    registry = BreakerRegistry(max_size=3, minimum_calls=5)
    a = registry.get("a")
    assert registry.get("a") is a
    assert a.settings.minimum_calls == 5
    registry.get("b")
    registry.get("c", minimum_calls=7)
    registry.get("a")  # a is now the most recent
    registry.get("d")
    assert registry.names() == ("c", "a", "d")
    assert "b" not in registry and len(registry) == 3
    assert registry.get("c", minimum_calls=7).settings.minimum_calls == 7
    with pytest.raises(ConfigurationError):
        registry.get("c", minimum_calls=8)
    snaps = registry.snapshot()
    assert [s.name for s in snaps] == ["a", "d", "c"]
    assert all(s.state is CLOSED and s.calls == 0 for s in snaps)


def test_registry_validates_defaults_when_built() -> None:
    with pytest.raises(ConfigurationError, match="failure_rate_threshold"):
        BreakerRegistry(failure_rate_threshold=2.0)
    with pytest.raises(ConfigurationError, match="name is not a per-breaker default"):
        BreakerRegistry(max_size=2, **{"name": "x"})


@pytest.mark.parametrize(("settings", "named"), [
    ({"failure_rate_threshold": 0.0}, "failure_rate_threshold"),
    ({"failure_rate_threshold": 1.5}, "failure_rate_threshold"),
    ({"slow_call_rate_threshold": -1}, "slow_call_rate_threshold"),
    ({"slow_call_duration": 0}, "slow_call_duration"),
    ({"minimum_calls": 0}, "minimum_calls"),
    ({"half_open_calls": 0}, "half_open_calls"),
    ({"wait_in_open": -1.0}, "wait_in_open"),
    ({"wait_in_open": float("inf")}, "wait_in_open"),
    ({"wait_multiplier": 0.5}, "wait_multiplier"),
    ({"wait_in_open": 10.0, "max_wait_in_open": 5.0}, "max_wait_in_open"),
    ({"max_wait_in_half_open": 0}, "max_wait_in_half_open"),
    ({"window": 100}, "window"),
    ({"failure": 42}, "failure"),
    ({"ignore": "x"}, "ignore"),
])
def test_bad_settings_are_refused_by_name(settings: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        CircuitBreaker("x", store=None, **settings)


def test_windows_validate_themselves() -> None:
    with pytest.raises(ConfigurationError, match="size"):
        CountWindow(0)
    with pytest.raises(ConfigurationError, match="seconds"):
        TimeWindow(seconds=0)
    with pytest.raises(ConfigurationError, match="buckets"):
        TimeWindow(seconds=10, buckets=0)
    with pytest.raises(ConfigurationError, match="name"):
        CircuitBreaker("", store=None)


def test_defaults_are_resilience4j_and_repr_is_plain() -> None:
    breaker = CircuitBreaker("defaults", store=None)
    s = breaker.settings
    # resilience4j's, except slow-call detection, which is opt-in here (math.inf: off).
    assert (s.failure_rate_threshold, s.slow_call_duration, s.slow_call_rate_threshold,
            s.window_size, s.minimum_calls, s.wait_in_open, s.half_open_calls) == (
        0.5, math.inf, 1.0, 100, 100, 60.0, 10)
    assert s.max_wait_in_open == 300.0 and s.max_wait_in_half_open is None
    assert "defaults" in repr(breaker) and "closed" in repr(breaker)
