"""The resilience report an error carries (issue 12 §5): attempts, delays and why, breaker."""

from __future__ import annotations

import asyncio

import pytest

from egress import (
    CircuitBreaker,
    CircuitOpenError,
    CountWindow,
    Pipeline,
    RateLimiter,
    Retry,
    StatusError,
    TransportError,
    attempts,
)
from egress._report import Reported
from egress.events import RateLimitWaited
from egress.stores.memory import MemoryStore
from egress.testing import FakeClock, RecordingSink


def test_a_failed_call_carries_its_attempts_and_delays_in_one_line() -> None:
    clock = FakeClock()
    pipeline = Pipeline(Retry(on=(TransportError, StatusError), stop=attempts(3)), clock=clock)
    errors = iter([TransportError("refused", sent=False), StatusError(503, retry_after=2.0),
                   StatusError(500)])

    def op() -> None:
        raise next(errors)

    with pytest.raises(StatusError) as info:
        pipeline.execute_sync("GET /v1/charges", op)
    line = info.value.__notes__[0]
    assert line.startswith("egress report GET /v1/charges: #1 TransportError sent=False; wait ")
    assert "(backoff); #2 StatusError 503 sent=True; wait 2.000s (server hint); " in line
    assert line.endswith("#3 StatusError 500 sent=True; retries exhausted after 3 attempt(s)")
    assert "\n" not in line
    assert info.value.__notes__[-1].startswith("egress.Retry(")  # Retry's own note stays last
    report = info.value.report  # type: ignore[attr-defined]
    assert [e.kind for e in report.events] == [
        "attempt.failed", "retry.scheduled", "attempt.failed", "retry.scheduled",
        "attempt.failed", "retry.exhausted"]


def test_a_rejection_reports_the_breaker_it_met() -> None:
    clock = FakeClock(auto_advance=False)
    breaker = CircuitBreaker("stripe", window=CountWindow(2), minimum_calls=2, store=None,
                             clock=clock)
    pipeline = Pipeline(breaker, clock=clock)

    def fail() -> None:
        raise TransportError("reset", sent=True)

    with pytest.raises(TransportError):
        pipeline.run_sync(fail)
    with pytest.raises(TransportError) as info:
        pipeline.run_sync(fail)
    assert "breaker stripe closed→open" in info.value.__notes__[0]
    with pytest.raises(CircuitOpenError) as rejected:
        pipeline.run_sync(fail)
    assert rejected.value.__notes__[0].endswith(": breaker stripe open: refused")


def test_a_call_that_succeeds_keeps_nothing_and_secrets_never_show() -> None:
    clock = FakeClock()
    pipeline = Pipeline(Retry(on=TransportError, stop=attempts(2)), clock=clock)
    assert pipeline.run_sync(lambda: 1) == 1
    with pytest.raises(TransportError) as info:
        pipeline.execute_sync("charge 4242424242424242 ?api_key=sk_live_x",
                              lambda: (_ for _ in ()).throw(TransportError("x", sent=False)))
    assert "4242424242424242" not in info.value.__notes__[0]
    assert "sk_live_x" not in info.value.__notes__[0]


def test_resilient_transport_errors_carry_the_report_once() -> None:
    import httpx

    from egress import BreakerRegistry
    from egress.http import ResilientTransport

    transport = ResilientTransport(
        httpx.MockTransport(lambda request: httpx.Response(500)), pipeline=Pipeline(),
        breakers=BreakerRegistry(minimum_calls=2, window=CountWindow(2)))
    with httpx.Client(transport=transport) as client:
        for _ in range(2):
            client.get("https://down.example.com/x")
        with pytest.raises(httpx.TransportError) as info:
            client.get("https://down.example.com/x")
    assert info.value.__notes__ == [
        "egress report GET down.example.com: breaker https://down.example.com open: refused"]


class _Answer(Reported):
    """A result object of a class that opts in to ``.report`` (as ``egress.http.Response``)."""

    __slots__ = ("value",)

    def __init__(self, value: int) -> None:
        self.value = value


def test_a_result_object_carries_its_report_built_only_when_read() -> None:
    clock = FakeClock()
    pipeline = Pipeline(Retry(on=StatusError, stop=attempts(3)), clock=clock)
    answers = iter([StatusError(503, retry_after=1.5), _Answer(7)])

    def op() -> _Answer:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    result = pipeline.execute_sync("GET /v1/orders", op)
    report = result.report
    assert report is not None and report.ok
    assert str(report) == ("egress report GET /v1/orders: #1 StatusError 503 sent=True; "
                           "wait 1.500s (server hint); #2 ok")
    quick = pipeline.execute_sync("GET /v1/orders", lambda: _Answer(1)).report
    assert str(quick) == "egress report GET /v1/orders: #1 ok"
    assert _Answer(2).report is None  # not from a pipeline


def test_a_result_report_with_per_call_events_has_durations() -> None:
    clock = FakeClock()
    pipeline = Pipeline(clock=clock, sink=RecordingSink(per_call=True))

    async def op() -> _Answer:
        await clock.sleep(0.25)
        return _Answer(1)

    result = asyncio.run(pipeline.execute("GET /v1/x", op))
    assert str(result.report) == "egress report GET /v1/x: #1 ok after 0.250s"


def test_limiter_waits_are_in_the_report_with_their_cause() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1.0, burst=1, max_wait=10.0, store=MemoryStore(), clock=clock,
                          name="stripe")
    pipeline = Pipeline(limiter, clock=clock)
    pipeline.execute_sync("POST /v1/charges", lambda: _Answer(1))  # takes the one token
    waited = pipeline.execute_sync("POST /v1/charges", lambda: _Answer(2)).report
    assert str(waited) == "egress report POST /v1/charges: wait 1.000s (limiter stripe); #1 ok"
    limiter.cooldown(3.0)  # a server's Retry-After paused it
    paused = pipeline.execute_sync("POST /v1/charges", lambda: _Answer(3)).report
    assert paused is not None
    [wait] = [e for e in paused.events if isinstance(e, RateLimitWaited)]
    assert (wait.cause, wait.limiter) == ("server", "stripe")
    assert "(server pause stripe)" in str(paused)

