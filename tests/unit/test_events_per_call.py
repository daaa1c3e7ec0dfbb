"""Per-call events: opt-in, complete for one call, in order, with the facts an operator needs."""

from __future__ import annotations

import pytest

from egress import CircuitBreaker, CountWindow, Pipeline, Retry, TransportError, attempts
from egress.errors import CircuitOpenError, StatusError
from egress.events import (
    AttemptFailed,
    AttemptSucceeded,
    CallbackSink,
    CallFinished,
    Event,
    FanOutSink,
)
from egress.testing import FakeClock, RecordingSink


def test_a_sink_that_opts_in_sees_every_call_and_attempt_in_order() -> None:
    clock = FakeClock(auto_advance=False)
    seen: list[Event] = []
    pipeline = Pipeline(Retry(on=TransportError, stop=attempts(3)), clock=clock,
                        sink=CallbackSink(seen.append, per_call=True))
    calls = 0

    def op() -> str:
        nonlocal calls
        calls += 1
        clock.advance(0.25)
        if calls == 1:
            raise TransportError("refused", sent=False)
        return "ok"

    assert pipeline.execute_sync("fetch", op) == "ok"
    assert [e.kind for e in seen] == [
        "call.started", "attempt.started", "attempt.failed", "retry.scheduled",
        "attempt.started", "attempt.succeeded", "call.finished"]
    failed = next(e for e in seen if isinstance(e, AttemptFailed))
    assert (failed.attempt, failed.error, failed.sent, failed.duration) == (
        1, "TransportError", False, 0.25)
    done = seen[-1]
    assert isinstance(done, CallFinished)
    assert (done.operation, done.outcome, done.attempts, done.error) == ("fetch", "ok", 2, None)
    assert done.duration >= 0.5  # two attempts of 0.25 s plus the backoff


async def test_outcomes_name_what_happened() -> None:
    clock = FakeClock(auto_advance=False)
    seen: list[Event] = []
    breaker = CircuitBreaker("b", window=CountWindow(2), minimum_calls=2, store=None,
                             clock=clock)
    pipeline = Pipeline(breaker, clock=clock, sink=CallbackSink(seen.append, per_call=True))

    async def refused() -> None:
        raise StatusError(503)

    for _ in range(2):
        with pytest.raises(StatusError):
            await pipeline.execute("x", refused)
    with pytest.raises(CircuitOpenError):
        await pipeline.execute("x", refused)
    finished = [e for e in seen if isinstance(e, CallFinished)]
    assert [(e.outcome, e.error, e.attempts) for e in finished] == [
        ("error", "StatusError", 1), ("error", "StatusError", 1),
        ("rejected", "CircuitOpenError", 0)]
    assert [e.status for e in seen if isinstance(e, AttemptFailed)] == [503, 503]


def test_sinks_that_do_not_opt_in_see_only_the_exceptional_events() -> None:
    clock = FakeClock()
    plain = RecordingSink()
    opted: list[Event] = []
    pipeline = Pipeline(Retry(on=TransportError, stop=attempts(2)), clock=clock,
                        sink=FanOutSink([plain, CallbackSink(opted.append, per_call=True)]))
    assert pipeline.run_sync(lambda: 1) == 1
    assert plain.events == []
    assert [e.kind for e in opted] == ["call.started", "attempt.started", "attempt.succeeded",
                                       "call.finished"]
    succeeded = opted[2]
    assert isinstance(succeeded, AttemptSucceeded)
    assert succeeded.method is None and succeeded.status is None  # not an HTTP call


def test_the_http_target_travels_with_the_call() -> None:
    seen: list[Event] = []
    pipeline = Pipeline(sink=CallbackSink(seen.append, per_call=True))

    class Answer:
        status_code = 204

    pipeline.execute_sync("GET /v1/x", Answer, target=("GET", "api.example.com"))
    succeeded = next(e for e in seen if isinstance(e, AttemptSucceeded))
    assert (succeeded.method, succeeded.server, succeeded.status) == (
        "GET", "api.example.com", 204)


def test_the_recording_sink_can_opt_in() -> None:
    sink = RecordingSink(per_call=True)
    Pipeline(sink=sink).run_sync(lambda: 1)
    assert sink.kinds() == ["call.started", "attempt.started", "attempt.succeeded",
                            "call.finished"]


def test_the_fast_builders_make_the_same_events_field_for_field() -> None:
    import dataclasses

    from egress.events import (
        AttemptStarted,
        AttemptSucceeded,
        CallFinished,
        CallStarted,
        attempt_started,
        attempt_succeeded,
        call_finished,
        call_started,
    )

    pairs = [
        (call_started(operation="op", at=1.0), CallStarted(operation="op", at=1.0)),
        (call_finished(operation="op", at=2.0, outcome="error", duration=1.5, attempts=3,
                       error="StatusError"),
         CallFinished(operation="op", at=2.0, outcome="error", duration=1.5, attempts=3,
                      error="StatusError")),
        (attempt_started(operation="op", at=1.0, attempt=2, method="GET", server="api"),
         AttemptStarted(operation="op", at=1.0, attempt=2, method="GET", server="api")),
        (attempt_succeeded(operation="op", at=1.0, attempt=2, duration=0.5, method="GET",
                           server="api", status=200),
         AttemptSucceeded(operation="op", at=1.0, attempt=2, duration=0.5, method="GET",
                          server="api", status=200)),
    ]
    for fast, slow in pairs:
        assert type(fast) is type(slow) and fast == slow
        # every field set by the builder, in the dataclass's own order: none left out
        assert dataclasses.astuple(fast) == dataclasses.astuple(slow)
        with pytest.raises(dataclasses.FrozenInstanceError):
            fast.operation = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):  # every field required: none can be left unset
        call_started(operation="op")
