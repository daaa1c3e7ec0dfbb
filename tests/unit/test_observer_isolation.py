"""An observer never changes an outcome (issue 9 §7, issue 12 §8).

A sink that raises on every event must leave each caller with exactly the error (or result) it
would have had without the sink, and every policy with the decision it would have made.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from egress import (
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    CountWindow,
    Pipeline,
    RateLimitedError,
    RateLimiter,
    Retry,
    TransportError,
    attempts,
)
from egress.errors import OutcomeUnknown
from egress.events import CallbackSink, Event, FanOutSink
from egress.http import ApiClient
from egress.payments import IdempotencyKeeper
from egress.stores.idempotency_memory import MemoryIdempotencyStore
from egress.testing import FakeClock, RecordingSink


def explode(event: Event) -> None:
    raise RuntimeError("sink is broken")


class Exploding:
    """A hand-written EventSink (not CallbackSink) that raises on every event."""

    def emit(self, event: Event) -> None:
        raise ValueError("broken exporter")


def refused() -> None:
    raise TransportError("refused", sent=False)


@pytest.mark.parametrize("sink", [CallbackSink(explode), Exploding()], ids=["callback", "custom"])
async def test_a_raising_sink_leaves_the_retry_error_to_the_caller(sink: Any) -> None:
    clock = FakeClock()
    pipeline = Pipeline(Retry(on=TransportError, stop=attempts(3)), clock=clock, sink=sink)
    calls = 0

    def op() -> None:
        nonlocal calls
        calls += 1
        refused()

    with pytest.raises(TransportError):
        pipeline.run_sync(op)
    assert calls == 3  # the retries the policy decided on all happened

    async def op_async() -> None:
        refused()

    with pytest.raises(TransportError):
        await pipeline.run(op_async)


@pytest.mark.parametrize("sink", [CallbackSink(explode), Exploding()], ids=["callback", "custom"])
def test_a_raising_sink_leaves_the_breaker_deciding_and_rejecting(sink: Any) -> None:
    clock = FakeClock(auto_advance=False)
    breaker = CircuitBreaker("up", window=CountWindow(4), minimum_calls=4, store=None,
                             clock=clock, sink=sink)
    pipeline = Pipeline(breaker, clock=clock, sink=sink)
    for _ in range(4):
        with pytest.raises(TransportError):
            pipeline.run_sync(refused)
    assert breaker.state is CircuitState.OPEN  # the transition completed despite the sink
    with pytest.raises(CircuitOpenError):
        pipeline.run_sync(lambda: "never called")
    breaker.reset()  # a manual transition goes to the breaker's own sink: contained too
    assert breaker.state is CircuitState.CLOSED


def test_a_raising_sink_leaves_the_limiter_rejecting() -> None:
    clock = FakeClock()
    sink = CallbackSink(explode)
    limiter = RateLimiter(10, max_wait=1.0, clock=clock, sink=sink)
    pipeline = Pipeline(limiter, clock=clock, sink=sink)
    limiter.cooldown(30.0)
    with pytest.raises(RateLimitedError):
        pipeline.run_sync(lambda: None)


async def test_a_raising_sink_leaves_outcome_unknown_to_the_caller() -> None:
    keeper = IdempotencyKeeper(MemoryIdempotencyStore(), scope="s",
                               clock=FakeClock(auto_advance=False), sink=CallbackSink(explode))

    class Lost:
        operation, reference, fingerprint = "create", "o-1", "fp"

        async def send(self, key: str, *, resumed: bool) -> str:
            raise OutcomeUnknown("lost", idempotency_key=key, reference="o-1",
                                 operation="create")

        async def fetch(self, result_id: str) -> str:
            return result_id

        async def settle(self, record: Any) -> str | None:
            return None

        def result_id(self, result: str) -> str:
            return result

        async def lookup(self) -> str | None:
            return None

    with pytest.raises(OutcomeUnknown):
        await keeper.run(Lost())
    with pytest.raises(OutcomeUnknown):  # the reuse of the stored key is observed too
        await keeper.run(Lost())


async def test_a_raising_sink_does_not_break_building_a_client() -> None:
    client = ApiClient("https://127.0.0.1:9", verify=False, allow_insecure=True,
                       sink=CallbackSink(explode))
    await client.aclose()


def test_one_failing_member_does_not_starve_the_others() -> None:
    clock = FakeClock()
    good = RecordingSink()
    pipeline = Pipeline(Retry(on=TransportError, stop=attempts(2)), clock=clock,
                        sink=FanOutSink([CallbackSink(explode), good]))
    with pytest.raises(TransportError):
        pipeline.run_sync(refused)
    assert good.kinds() == ["retry.scheduled", "retry.exhausted"]


def test_the_failure_is_logged_once_per_sink_and_error_type(
        caplog: pytest.LogCaptureFixture) -> None:
    class OnceBroken:
        def emit(self, event: Event) -> None:
            raise KeyError("nope")

    clock = FakeClock()
    pipeline = Pipeline(Retry(on=TransportError, stop=attempts(3)), clock=clock,
                        sink=OnceBroken())
    with caplog.at_level(logging.WARNING, logger="egress.events"):
        for _ in range(3):
            with pytest.raises(TransportError):
                pipeline.run_sync(refused)
    records = [r for r in caplog.records if "OnceBroken" in r.getMessage()]
    assert len(records) == 1
    assert records[0].name == "egress.events"
    assert "KeyError" in records[0].getMessage()
