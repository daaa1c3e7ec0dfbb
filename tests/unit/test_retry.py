"""Retry: attempt counts, jitter bounds, hints, deadlines, nesting, cancellation."""

from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from egress import (
    AttemptTimeoutError,
    Backoff,
    ConfigurationError,
    DeadlineExceededError,
    Jitter,
    Pipeline,
    Retry,
    Timeout,
    TransportError,
    attempts,
    current_context,
    elapsed,
)
from egress.errors import StatusError
from egress.events import (
    DeadlineExceeded,
    NestedRetrySuppressed,
    RetryExhausted,
    RetryGivenUp,
    RetryScheduled,
)
from egress.testing import FakeClock, RecordingSink


class Flaky:
    """Fails ``failures`` times with ``error()``, then returns ``"ok"``. Counts calls."""

    def __init__(self, failures: int, error: type[Exception] | None = None) -> None:
        self.failures = failures
        self.calls = 0
        self.make = error or (lambda: TransportError("refused", sent=False))

    def _step(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.make()
        return "ok"

    async def __call__(self) -> str:
        return self._step()

    def sync(self) -> str:
        return self._step()


def fixed(value: float = 0.5) -> random.Random:
    rng = random.Random()
    rng.random = lambda: value  # type: ignore[method-assign]
    return rng


async def test_succeeds_after_failures_with_exact_attempts(clock: FakeClock) -> None:
    flaky = Flaky(2)
    pipeline = Pipeline(Retry(on=TransportError, stop=attempts(3)), clock=clock)
    assert await pipeline.run(flaky) == "ok"
    assert flaky.calls == 3
    assert len(clock.sleeps) == 2


def test_sync_makes_the_same_decisions(clock: FakeClock) -> None:
    flaky = Flaky(2)
    retry = Retry(on=TransportError, stop=attempts(3), random=fixed().random)
    assert Pipeline(retry, clock=clock).run_sync(flaky.sync) == "ok"
    sync_sleeps = list(clock.sleeps)

    async_clock = FakeClock()
    flaky_async = Flaky(2)
    retry = Retry(on=TransportError, stop=attempts(3), random=fixed().random)
    assert asyncio.run(Pipeline(retry, clock=async_clock).run(flaky_async)) == "ok"
    assert async_clock.sleeps == sync_sleeps == [0.05, 0.1]
    assert flaky.calls == flaky_async.calls == 3


async def test_gives_up_after_stop_and_reraises_the_last_error_with_a_note(
    clock: FakeClock, sink: RecordingSink
) -> None:
    errors: list[TransportError] = []

    async def always_fails() -> None:
        errors.append(TransportError(f"refused #{len(errors) + 1}", sent=False))
        raise errors[-1]

    pipeline = Pipeline(Retry(on=TransportError, stop=attempts(4)), clock=clock, sink=sink)
    with pytest.raises(TransportError) as info:
        await pipeline.run(always_fails)
    assert info.value is errors[-1]
    assert len(errors) == 4
    note = info.value.__notes__[-1]
    assert "4 attempt(s)" in note and "attempts(4)" in note
    delays = note.split("delays [")[1].split("]")[0].split(", ")
    assert len(delays) == 3
    assert [e.attempt for e in sink.of(RetryScheduled)] == [1, 2, 3]
    assert sink.of(RetryExhausted)[0].attempts == 4


async def test_errors_not_named_in_on_are_not_retried(clock: FakeClock) -> None:
    flaky = Flaky(5, error=lambda: ValueError("bad input"))  # type: ignore[arg-type, return-value]
    with pytest.raises(ValueError, match="bad input"):
        await Pipeline(Retry(on=TransportError), clock=clock).run(flaky)
    assert flaky.calls == 1


async def test_predicates_classify(clock: FakeClock) -> None:
    def only_unsent(exc: BaseException) -> bool:
        return isinstance(exc, TransportError) and not exc.sent

    sent = Flaky(3, error=lambda: TransportError("reset", sent=True))  # type: ignore[arg-type, return-value]
    with pytest.raises(TransportError):
        await Pipeline(Retry(on=only_unsent), clock=clock).run(sent)
    assert sent.calls == 1

    unsent = Flaky(2)
    assert await Pipeline(Retry(on=[only_unsent]), clock=clock).run(unsent) == "ok"


@pytest.mark.parametrize(
    "exc", [asyncio.CancelledError(), KeyboardInterrupt(), SystemExit(1), GeneratorExit()]
)
async def test_never_retries_base_exceptions(clock: FakeClock, exc: BaseException) -> None:
    calls = 0

    async def op() -> None:
        nonlocal calls
        calls += 1
        raise exc

    retry = Retry(on=lambda e: True)  # even a predicate that says yes to everything
    with pytest.raises(type(exc)):
        await Pipeline(retry, clock=clock).run(op)
    assert calls == 1


def test_base_exception_types_refused_in_on() -> None:
    with pytest.raises(ConfigurationError, match="CancelledError"):
        Retry(on=asyncio.CancelledError)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        Retry(on=())
    with pytest.raises(ConfigurationError):
        Retry(on=[42])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("jitter", "rand", "expected"),
    [
        (Jitter.NONE, 0.3, [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]),
        (Jitter.FULL, 0.5, [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]),
        (Jitter.FULL, 0.0, [0.0] * 6),
        (Jitter.EQUAL, 0.0, [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]),
        (Jitter.EQUAL, 1.0, [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]),
    ],
)
def test_backoff_with_fixed_random(jitter: Jitter, rand: float, expected: list[float]) -> None:
    backoff = Backoff(initial=1.0, multiplier=2.0, cap=10.0, jitter=jitter)
    assert [backoff.delay(n, 1.0, lambda: rand) for n in range(1, 7)] == expected


def test_decorrelated_grows_from_previous_and_is_capped() -> None:
    backoff = Backoff(initial=1.0, cap=10.0, jitter=Jitter.DECORRELATED)
    assert backoff.delay(1, 1.0, lambda: 0.0) == 1.0
    assert backoff.delay(2, 2.0, lambda: 1.0) == 6.0  # up to 3 x previous
    assert backoff.delay(3, 6.0, lambda: 1.0) == 10.0  # capped


@settings(max_examples=300, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    jitter=st.sampled_from(list(Jitter)),
    initial=st.floats(0.0, 5.0),
    cap=st.floats(5.0, 60.0),
    multiplier=st.floats(1.0, 4.0),
)
def test_no_delay_exceeds_the_cap(seed: int, jitter: Jitter, initial: float, cap: float,
                                  multiplier: float) -> None:
    rng = random.Random(seed)
    backoff = Backoff(initial=initial, multiplier=multiplier, cap=cap, jitter=jitter)
    previous = initial
    for retry in range(1, 60):
        delay = backoff.delay(retry, previous, rng.random)
        assert 0.0 <= delay <= cap
        previous = delay or initial


async def test_retry_after_hint_overrides_computed_delay(clock: FakeClock,
                                                         sink: RecordingSink) -> None:
    flaky = Flaky(1, error=lambda: StatusError(503, retry_after=7.0))  # type: ignore[arg-type, return-value]
    retry = Retry(on=StatusError, backoff=Backoff(initial=0.1))
    assert await Pipeline(retry, clock=clock, sink=sink).run(flaky) == "ok"
    assert clock.sleeps == [7.0]
    assert sink.of(RetryScheduled)[0].hinted is True


async def test_retry_after_beyond_max_fails_at_once_carrying_the_hint(
    clock: FakeClock, sink: RecordingSink
) -> None:
    flaky = Flaky(1, error=lambda: StatusError(429, retry_after=3600.0))  # type: ignore[arg-type, return-value]
    retry = Retry(on=StatusError, max_retry_after=60.0)
    with pytest.raises(StatusError) as info:
        await Pipeline(retry, clock=clock, sink=sink).run(flaky)
    assert info.value.retry_after == 3600.0
    assert flaky.calls == 1 and clock.sleeps == []
    assert sink.of(RetryGivenUp)[0].reason == "retry_after_too_long"
    assert "max_retry_after" in info.value.__notes__[-1]


async def test_backoff_longer_than_the_deadline_fails_at_once(clock: FakeClock,
                                                              sink: RecordingSink) -> None:
    flaky = Flaky(1, error=lambda: StatusError(503, retry_after=30.0))  # type: ignore[arg-type, return-value]
    pipeline = Pipeline(Timeout(10.0), Retry(on=StatusError), clock=clock, sink=sink)
    start = clock.now()
    with pytest.raises(DeadlineExceededError) as info:
        await pipeline.run(flaky)
    assert clock.now() == start  # no sleep at all
    assert isinstance(info.value.__cause__, StatusError)
    assert info.value.retry_after == 30.0
    assert sink.of(DeadlineExceeded)


async def test_no_attempt_starts_after_the_deadline(clock: FakeClock) -> None:
    """Attempt timeouts of 4 s under a 10 s deadline: attempts at 0, ~4, ~8; the third is cut
    at 10 s by the deadline, and no fourth starts."""
    calls: list[float] = []

    async def hangs() -> None:
        calls.append(clock.now())
        await clock.sleep(100.0)

    retry = Retry(on=AttemptTimeoutError, stop=attempts(10), backoff=Backoff(initial=0.01))
    pipeline = Pipeline(Timeout(10.0), retry, Timeout(4.0), clock=clock)
    start = clock.now()
    with pytest.raises(DeadlineExceededError):
        await pipeline.run(hangs)
    assert len(calls) == 3
    assert all(t - start < 10.0 for t in calls)
    assert clock.now() - start == pytest.approx(10.0)


async def test_elapsed_stop_combines_with_attempts(clock: FakeClock) -> None:
    flaky = Flaky(100)
    retry = Retry(
        on=TransportError,
        stop=attempts(50) | elapsed(5.0),
        backoff=Backoff(initial=1.0, multiplier=1.0, cap=1.0, jitter=Jitter.NONE),
    )
    with pytest.raises(TransportError) as info:
        await Pipeline(retry, clock=clock).run(flaky)
    assert flaky.calls == 6  # at t = 0, 1, 2, 3, 4, 5; a seventh would start at 6 > 5
    assert "attempts(50) | elapsed(5.0)" in info.value.__notes__[-1]


async def test_nested_retry_does_not_multiply(clock: FakeClock, sink: RecordingSink) -> None:
    calls = 0

    async def fails() -> None:
        nonlocal calls
        calls += 1
        raise TransportError("down", sent=False)

    inner = Pipeline(Retry(on=TransportError, stop=attempts(3)), clock=clock, sink=sink)
    middle = Pipeline(Retry(on=TransportError, stop=attempts(3)), clock=clock, sink=sink)
    outer = Pipeline(Retry(on=TransportError, stop=attempts(3)), clock=clock, sink=sink)

    async def level2() -> None:
        await inner.run(fails)

    async def level1() -> None:
        await middle.run(level2)

    with pytest.raises(TransportError):
        await outer.run(level1)
    assert calls == 3  # not 27
    assert len(sink.of(NestedRetrySuppressed)) == 6


async def test_nested_retry_multiplies_when_explicitly_allowed(clock: FakeClock) -> None:
    calls = 0

    async def fails() -> None:
        nonlocal calls
        calls += 1
        raise TransportError("down", sent=False)

    inner = Pipeline(Retry(on=TransportError, stop=attempts(2), allow_nested=True), clock=clock)
    outer = Pipeline(Retry(on=TransportError, stop=attempts(3)), clock=clock)

    async def level1() -> None:
        await inner.run(fails)

    with pytest.raises(TransportError):
        await outer.run(level1)
    assert calls == 6


async def test_cancellation_during_backoff_stops_everything() -> None:
    clock = FakeClock(auto_advance=False)
    flaky = Flaky(10)
    retry = Retry(on=TransportError, stop=attempts(10),
                  backoff=Backoff(initial=5.0, jitter=Jitter.NONE))
    task = asyncio.create_task(Pipeline(retry, clock=clock).run(flaky))
    await clock.settle()
    assert flaky.calls == 1 and clock.sleeps == [5.0]  # sleeping in the first backoff
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    clock.advance(1000.0)
    await clock.settle()
    assert flaky.calls == 1


def test_attempt_number_is_visible_in_the_context(clock: FakeClock) -> None:
    seen: list[int] = []

    def op() -> str:
        ctx = current_context()
        assert ctx is not None
        seen.append(ctx.attempt)
        if len(seen) < 3:
            raise TransportError("x", sent=False)
        return "ok"

    assert Pipeline(Retry(on=TransportError), clock=clock).run_sync(op) == "ok"
    assert seen == [1, 2, 3]
    assert current_context() is None


def test_invalid_configuration_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="attempts"):
        attempts(0)
    with pytest.raises(ConfigurationError, match="elapsed"):
        elapsed(-1)
    with pytest.raises(ConfigurationError, match="cap"):
        Backoff(initial=5.0, cap=1.0)
    with pytest.raises(ConfigurationError, match="multiplier"):
        Backoff(multiplier=0.5)
    with pytest.raises(ConfigurationError, match="max_retry_after"):
        Retry(on=TransportError, max_retry_after=float("nan"))
